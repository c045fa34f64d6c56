"""One upload's transfer: the form built from the arguments, a fresh streamed body per attempt with its progress lines, and the summary line.

The hook's ``_upload`` resolves the source, sends :meth:`UploadTransfer.body` as its request's body
factory (the retry loop calls it once per attempt) and reads the answer through
:meth:`UploadTransfer.finish`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from airflow_provider_bctrl._arguments import UploadArguments
from airflow_provider_bctrl._multipart import StreamingMultipartBody, guess_content_type
from airflow_provider_bctrl._progress import StartLine, TransferProgress
from airflow_provider_bctrl._storage import Source
from airflow_provider_bctrl._validation import check_name
from airflow_provider_bctrl.models import RuntimeStagedFile

__all__ = ["UploadTransfer"]


class UploadTransfer:
    """The transfer of one ``upload_file`` call, from its checked arguments and its resolved source.

    :param server: gives the server's URL for the start line; called once, after the file's name is
        checked, so connection problems surface before the file is opened.
    :param quiet_seconds: how long the start line is held back and progress lines stay away.
    :param wait_notice: seconds without an answer after the last byte before a waiting line.
    """

    def __init__(
        self,
        args: UploadArguments,
        origin: Source,
        *,
        log: logging.Logger | Any,
        server: Callable[[], str],
        quiet_seconds: float,
        wait_notice: float,
    ) -> None:
        filename = args.name if args.name is not None else check_name(origin.name, "the source file name")
        self.filename = filename
        self.fields = _form_fields(args, filename)
        self.content_type = guess_content_type(filename)
        base_url = server()
        self._origin = origin
        self._log = log
        self._quiet_seconds = quiet_seconds
        self._wait_notice = wait_notice
        self._progress: TransferProgress | None = None  # the latest attempt's
        #: Held back: a short upload logs its summary line only (a line costs as much as the rest of a
        #: small upload's own work); a long or failed one says first what it is doing.
        self.start = StartLine(
            log,
            quiet_seconds,
            lambda: (
                "Uploading %s (%d bytes) into runtime %s at %s",
                origin.shown,
                origin.size,
                args.runtime_id,
                base_url,
            ),
        )

    def body(self) -> StreamingMultipartBody:
        """A fresh body for one attempt, the source opened again, with a fresh progress counter."""
        origin = self._origin
        body = StreamingMultipartBody(
            fields=self.fields,
            file_field="file",
            stream=origin.open(),
            # A local file is sized again when opened, so one that changed since is caught.
            size=None if origin.local_path is not None else origin.size,
            filename=self.filename,
            content_type=self.content_type,
        )
        progress = TransferProgress(
            self._log,
            f"Upload of {self.filename}",
            body.file_size,
            quiet_seconds=self._quiet_seconds,
            wait_notice=self._wait_notice,
            start=self.start,
        )
        self._progress = progress
        body.on_progress = progress.update
        body.on_sent = progress.wait_for_answer
        body.on_closed = progress.answered  # send() closes the body when the attempt is over
        return body

    def finish(self, parse: Callable[[], RuntimeStagedFile]) -> RuntimeStagedFile:
        """Read the answer with ``parse``, then log the summary line, also when the answer cannot be read."""
        staged: RuntimeStagedFile | None = None
        try:
            with self.start.on_failure():
                staged = parse()
        finally:
            # The summary is logged even when the answer cannot be parsed: the bytes did go.
            if self._progress is not None:
                self._progress.finish(_outcome(staged))
        return staged


def _form_fields(args: UploadArguments, filename: str) -> list[tuple[str, str]]:
    """The form's text parts, in order, from the arguments that were given."""
    fields: list[tuple[str, str]] = []
    if args.name is not None or '"' in filename:
        # The file part's filename="..." escapes a quote as %22 (HTML5 rules), which a server may
        # keep literally; the name part carries the exact name.
        fields.append(("name", filename))
    if args.runtime_path is not None:
        fields.append(("runtimePath", args.runtime_path))
    if args.destination_path is not None:
        fields.append(("destinationPath", args.destination_path))
    if args.metadata is not None:
        fields.append(("metadata", json.dumps(args.metadata, separators=(",", ":"), ensure_ascii=False)))
    return fields


def _outcome(staged: RuntimeStagedFile | None) -> str:
    """The end of an upload's summary line: where the file went, as far as the answer says."""
    if staged is None:
        return "the answer could not be read"
    where = f", runtime path {staged.runtime_path}" if staged.runtime_path else ""
    return f"stored as file {staged.id}{where}"
