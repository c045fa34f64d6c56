"""A throwaway self-signed certificate for 127.0.0.1, for the TLS benchmarks and the tests' TLS servers.

Kept apart from ``_common.py`` so that a test can import it without the benchmark harness (which
probes for GNU time at import); ``cryptography`` is imported only when a certificate is made.
"""

from __future__ import annotations

from pathlib import Path


def loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for ``127.0.0.1`` and its key: ``(cert.pem, key.pem)``.

    The certificate is its own CA, valid from an hour ago for a day: a client that trusts it as its
    only CA (curl ``--cacert``, the hook through ``REQUESTS_CA_BUNDLE``) verifies the server fully, so
    nothing skips verification.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bctrl throwaway loopback certificate")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "loopback-cert.pem", directory / "loopback-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
