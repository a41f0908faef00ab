#!/usr/bin/env bash
# interleaved.sh [ROUNDS] - keep-alive throughput and CPU per request of ward and haproxy,
# alternating round by round, on the shared bench's load (../shared/bench phase a).
#
#   benches/interleaved.sh              # 8 rounds: ward, haproxy, ward, haproxy, ...
#   WARD_B=/tmp/ward-old benches/interleaved.sh 4   # also an other ward binary (A/B a change)
#   SECS=8 CONNS=32                     # per round: seconds measured, connections
#
# One run of the shared bench moves 5-8% from run to run on a 2-core machine, more than
# most single changes; alternating the proxies round by round and comparing medians (and
# the round-by-round ratios) puts both under the same drift. Per round it prints req/s,
# the proxy's and the backend's CPU per request (from /proc, over the measured seconds)
# and the proxy's context switches per request; at the end the medians and ratios.
# Needs the shared bench set up (its setup.sh); loopback only; the load generator on CPU
# 0, the proxy and the backend on CPU 1, as in the bench.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=${WARD_BENCH_DIR:-$root/../shared/bench}
oha=${OHA:-${BENCH_HOME:-$HOME/.cache/ward-bench}/oha}
[[ -x $oha && -f $bench/pki/ca.crt ]] || { echo "set up the shared bench first: $bench/setup.sh" >&2; exit 2; }
rounds=${1:-8} secs=${SECS:-8} conns=${CONNS:-32}

cargo build --release -p ward --bin ward --manifest-path "$root/Cargo.toml"
ward_a="${CARGO_TARGET_DIR:-$root/target}/release/ward"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# ward reads PKCS#8 keys only; the key sits alone in its directory (ward watches it).
openssl pkcs8 -topk8 -nocrypt -in "$bench/pki/server.key" -out "$work/server.p8.pem"
cd "$bench"
mkdir -p run/conf run/backend
for f in conf/*; do sed "s#@H@#$bench#g" "$f" > "run/conf/${f##*/}"; done

wait_port() { for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }
ticks() { local s=0 t; for t in /proc/"$1"/task/*/stat; do s=$((s + $(sed 's/.*) //' "$t" | awk '{print $12+$13}'))); done; echo "$s"; }
switches() { grep ctxt /proc/"$1"/task/*/status | awk '{s+=$2} END {print s}'; }

# The bench's backend config runs nginx in the foreground (daemon off).
taskset -c 1 nginx -p "$bench/run/backend" -e "$work/backend.err" \
  -c "$bench/run/conf/backend-nginx.conf" > "$work/backend.log" 2>&1 & pids+=($!)
backend=$!
wait_port 18080
taskset -c 1 haproxy -db -f run/conf/haproxy.cfg > "$work/haproxy.log" 2>&1 & pids+=($!)
haproxy=$!
wait_port 18444
# The backend's worker (the master only supervises).
backend_worker=$(ps -o pid= --ppid "$backend" | head -1 | tr -d ' ')
backend_worker=${backend_worker:-$backend}

# round LABEL PID PORT -> "LABEL rps us_per_req backend_us_per_req cs_per_req"
round() {
  local label=$1 pid=$2 port=$3
  taskset -c 0 "$oha" --no-tui --output-format json --ipv4 --cacert pki/ca.crt --cert pki/client.crt \
    --key pki/client.key -z "$((secs + 3))s" -c "$conns" "https://localhost:$port/" > "$work/oha.json" 2>/dev/null &
  local load=$!
  sleep 2
  local a0 n0 c0 t0 a1 n1 c1 t1
  a0=$(ticks "$pid") n0=$(ticks "$backend_worker") c0=$(switches "$pid") t0=$(date +%s.%N)
  sleep "$secs"
  a1=$(ticks "$pid") n1=$(ticks "$backend_worker") c1=$(switches "$pid") t1=$(date +%s.%N)
  wait "$load"
  python3 - "$label" "$(jq '.summary.requestsPerSec' "$work/oha.json")" "$a0" "$a1" "$n0" "$n1" "$c0" "$c1" "$t0" "$t1" "$(getconf CLK_TCK)" <<'EOF'
import sys
label, rps, a0, a1, n0, n1, c0, c1, t0, t1, clk = sys.argv[1:]
rps = float(rps); n = rps * (float(t1) - float(t0)); us = 1e6 / int(clk)
print(label, f"{rps:.0f}", f"{(int(a1)-int(a0))*us/n:.1f}", f"{(int(n1)-int(n0))*us/n:.1f}", f"{(int(c1)-int(c0))/n:.2f}")
EOF
}
# ward LABEL BINARY -> a round of that binary, started fresh
ward_round() {
  taskset -c 1 "$2" inbound --listen 127.0.0.1:18447 --target 127.0.0.1:18080 --protocol http \
    --allow spiffe://example.org/ns/default/sa/client --cert pki/server.crt \
    --key "$work/server.p8.pem" --bundle pki/ca.crt > "$work/ward.log" 2>&1 &
  local pid=$!
  wait_port 18447
  round "$1" "$pid" 18447
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "label req/s us/req backend_us/req switches/req" | tee "$work/rounds"
for _ in $(seq "$rounds"); do
  ward_round ward "$ward_a" | tee -a "$work/rounds"
  [[ -n ${WARD_B:-} ]] && ward_round ward-b "$WARD_B" | tee -a "$work/rounds"
  round haproxy "$haproxy" 18444 | tee -a "$work/rounds"
done
python3 - "$work/rounds" <<'EOF'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {}
for r in rows:
    by.setdefault(r[0], []).append((float(r[1]), float(r[2])))
for k, v in by.items():
    print(f"{k}: median {st.median(a for a, _ in v):.0f} req/s, {st.median(b for _, b in v):.1f} us/req")
for k in by:
    if k != "haproxy":
        ratios = [a[0] / b[0] for a, b in zip(by[k], by["haproxy"])]
        print(f"{k}/haproxy req/s: median {st.median(ratios):.3f}, rounds " + " ".join(f"{x:.2f}" for x in ratios))
EOF
