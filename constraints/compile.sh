#!/usr/bin/env bash
# Re-make constraints/airflow-<line>.txt: one fully pinned dependency set per supported Airflow line,
# resolved as the package registry stood when that line's newest patch was released.
#
#   bash constraints/compile.sh            # every line
#   bash constraints/compile.sh 3.1        # one line
#
# Needs uv (pip install uv). Why not Airflow's own constraints files: they cannot be fetched from the
# machines this project is built on, so we resolve the same kind of set ourselves. Each set covers the
# project's dependencies and all its extras (test, docs, openlineage, emulator), for CPython 3.11 on Linux.
#
# One package is resolved as of today rather than the release date: apache-airflow-providers-common-compat.
# It is the layer that maps Airflow 2.11 / 3.x import paths, we require a recent one (pyproject.toml), and
# it declares apache-airflow>=2.11, so the newest release is what a user on any line installs.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"
TODAY="${CONSTRAINTS_TODAY:-$(date -u +%Y-%m-%d)}"

# line  airflow version  --exclude-newer (the day after that version's upload to the registry)
LINES="
2.11 2.11.2 2026-03-15
3.0  3.0.6  2025-08-30
3.1  3.1.8  2026-03-12
3.2  3.2.2  2026-05-30
3.3  3.3.2  2026-09-18
"

want="${1:-}"
while read -r line version cutoff; do
  [ -n "$line" ] || continue
  [ -z "$want" ] || [ "$want" = "$line" ] || continue
  out="constraints/airflow-${line}.txt"
  echo "==> ${out}: apache-airflow==${version}, registry as of ${cutoff}"
  cmd="uv pip compile pyproject.toml --all-extras --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --exclude-newer ${cutoff} --exclude-newer-package apache-airflow-providers-common-compat=${TODAY} (+ apache-airflow==${version})"
  {
    echo "# Constraints for Airflow ${line} (apache-airflow==${version}): every dependency of airflow-provider-bctrl"
    echo "# and its extras, pinned. Made by constraints/compile.sh with $("$UV" --version):"
    echo "#   ${cmd}"
    echo "# i.e. resolved as the registry stood on ${cutoff} (the day after ${version} was uploaded), except"
    echo "# apache-airflow-providers-common-compat, resolved as of ${TODAY} (see compile.sh for why)."
    echo "# Use: pip install -c ${out} 'airflow-provider-bctrl[...]'  (make test-matrix AIRFLOW=${line})"
    echo "apache-airflow==${version}" | "$UV" pip compile pyproject.toml - --all-extras \
      --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
      --exclude-newer "${cutoff}" \
      --exclude-newer-package "apache-airflow-providers-common-compat=${TODAY}" \
      --no-header --annotation-style line --quiet
  } > "${out}.tmp"
  mv "${out}.tmp" "${out}"
  echo "    $(grep -c '==' "$out") pins"
done <<< "$LINES"
