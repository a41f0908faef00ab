#!/usr/bin/env bash
# py-spiffe (the reference Python SPIFFE client) against `ward dev`.
# Needs the venv: python3 -m venv tests/interop/.venv &&
#   tests/interop/.venv/bin/pip install -r tests/interop/requirements.txt
# WARD_BIN: the ward binary (default: target/debug/ward of this checkout).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ward_bin="${WARD_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/ward}"
python="$here/.venv/bin/python"
if [[ ! -x "$python" ]]; then
    echo "run_py_spiffe: no venv at $here/.venv (see requirements.txt for the install line)" >&2
    exit 1
fi
exec timeout 300 "$python" "$here/py_spiffe_interop.py" "$ward_bin"
