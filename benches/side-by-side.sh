#!/usr/bin/env bash
# side-by-side.sh [PEER...] - ward beside its peers in ONE run of the shared mTLS proxy
# benchmark (../shared/bench, or $WARD_BENCH_DIR), so the figures compare as ratios.
#
#   benches/side-by-side.sh                    # haproxy, nginx, Envoy, then ward
#   benches/side-by-side.sh haproxy            # only some peers beside ward
#   REPEAT=1 DUR=5s benches/side-by-side.sh    # shorter (the bench's own knobs pass through)
#
# ward runs as the bench requires of every peer: `ward inbound --protocol http` on
# 127.0.0.1:18447 with the bench's server certificate, requiring a client certificate
# chained to its CA, allowing only spiffe://example.org/ns/default/sa/client, forwarding
# plaintext HTTP/1.1 to the bench's backend on 127.0.0.1:18080. Identity comes from the
# bench's PEM files (ward's file identity source), built with the release profile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${WARD_BENCH_DIR:-$root/../shared/bench}
[[ -x $bench/bench.sh ]] || { echo "no shared bench at $bench (set WARD_BENCH_DIR)" >&2; exit 2; }
oha=${OHA:-${BENCH_HOME:-$HOME/.cache/ward-bench}/oha}
[[ -x $oha ]] || { echo "the bench is not set up (no $oha): run $bench/setup.sh once" >&2; exit 2; }

peers=("$@"); ((${#peers[@]})) || peers=(haproxy nginx envoy)

cargo build --release -p ward --bin ward --manifest-path "$root/Cargo.toml"
ward="${CARGO_TARGET_DIR:-$root/target}/release/ward"

# ward reads PKCS#8 private keys only; the bench ships a SEC1 ("EC PRIVATE KEY") key.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl pkcs8 -topk8 -nocrypt -in "$bench/pki/server.key" -out "$work/server.p8.pem"

cd "$bench"
# One run: the table shows only the lines this run appends to results/results.jsonl.
mkdir -p results && touch results/results.jsonl
before=$(wc -l < results/results.jsonl)
./run-all.sh "${peers[@]}"
./bench.sh ward https://localhost:18447 -- "$ward" inbound \
    --listen 127.0.0.1:18447 --target 127.0.0.1:18080 --protocol http \
    --allow spiffe://example.org/ns/default/sa/client \
    --cert pki/server.crt --key "$work/server.p8.pem" --bundle pki/ca.crt
tail -n "+$((before + 1))" results/results.jsonl > "$work/this-run.jsonl"
./table.sh "$work/this-run.jsonl"
