#!/usr/bin/env bash
# The README's throughput and latency figures: a local 3-node cluster (scripts/cluster.sh, fsync on, loopback), a
# warm-up, then `raft-cli benchmark` for writes at 1, 16 and 64 clients and a 90%-read mix (linearizable) at 64 clients.
# Each run is preceded, in the same process, by the same load against a do-nothing endpoint (--baseline): what the tool
# can drive by itself at that moment on this machine. After each run: the servers' CPU time (user + system, all three
# processes, read from /proc) divided by the operations the cluster served, the figure machine noise moves least.
#   scripts/bench.sh [seconds-per-run] [repeats]
# RAFTKV_SERVER_TREE=<another checkout> runs that checkout's server under this checkout's raft-cli: two versions of the
# server, driven by the same tool, compared in one sitting (run the two alternately). RAFTKV_BENCH_LOADS picks the loads
# (";"-separated benchmark options, e.g. "--clients 64 --read-ratio 0.9"). RAFTKV_BENCH_TLS=1 runs the cluster with TLS on
# both ports and a write token (scripts/cluster.sh --tls); raft-cli then speaks HTTPS with the token.
# RAFTKV_BENCH_WATCHERS=N keeps N watch streams open on every key (curl -N on /watch?prefix=, spread over the three
# nodes) during the runs, reading and discarding every change: the cost of watchers on the write path.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-15}"
repeats="${2:-3}"
tree="$(cd "${RAFTKV_SERVER_TREE:-.}" && pwd)"
export RAFTKV_CLUSTER_DIR="${RAFTKV_CLUSTER_DIR:-$(mktemp -d)/cluster}"
scheme=http
[ "${RAFTKV_BENCH_TLS:-0}" = "1" ] && scheme=https
export RAFTKV_CLUSTER_TLS="${RAFTKV_BENCH_TLS:-0}"
export RAFTKV_ENDPOINTS="$scheme://127.0.0.1:${RAFTKV_CLUSTER_PORT:-8081},$scheme://127.0.0.1:$((${RAFTKV_CLUSTER_PORT:-8081} + 1)),$scheme://127.0.0.1:$((${RAFTKV_CLUSTER_PORT:-8081} + 2))"

dotnet build -c Release "$tree/src/RaftKv.Server" -v quiet -nologo >/dev/null
dotnet build -c Release src/RaftKv.Cli -v quiet -nologo >/dev/null
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll)
RAFTKV_CLUSTER_SKIP_BUILD=1 "$tree/scripts/cluster.sh" start
if [ "$scheme" = https ]; then
  export RAFTKV_CACERT="$RAFTKV_CLUSTER_DIR/certs/ca.pem" RAFTKV_TOKEN="$(cat "$RAFTKV_CLUSTER_DIR/token")"
fi
watchers=()
trap 'for pid in "${watchers[@]}"; do kill "$pid" 2>/dev/null || true; done; "$tree/scripts/cluster.sh" stop >/dev/null; rm -rf "$RAFTKV_CLUSTER_DIR"' EXIT
echo "== server: $tree ($(git -C "$tree" rev-parse --short HEAD)), $scheme, ${RAFTKV_BENCH_WATCHERS:-0} watchers"
IFS=',' read -r -a endpoints <<<"$RAFTKV_ENDPOINTS"
for i in $(seq 1 "${RAFTKV_BENCH_WATCHERS:-0}"); do
  curl -sN ${RAFTKV_CACERT:+--cacert "$RAFTKV_CACERT"} ${RAFTKV_TOKEN:+-H "Authorization: Bearer $RAFTKV_TOKEN"} \
    "${endpoints[$((i % 3))]}/watch?prefix=" >/dev/null 2>&1 &
  watchers+=($!)
done

# Milliseconds of CPU (user + system) the server processes have used so far.
server_cpu_ms() {
  local ticks=0 pid
  for pidfile in "$RAFTKV_CLUSTER_DIR"/n*.pid; do
    pid=$(cat "$pidfile")
    ticks=$((ticks + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo $((ticks * 1000 / $(getconf CLK_TCK)))
}

echo "== warm-up (JIT, tiered compilation, connection pools): 30 s, not counted"
"${cli[@]}" benchmark --duration 30 --clients 64 --read-ratio 0.5 --baseline >/dev/null

IFS=';' read -r -a loads <<<"${RAFTKV_BENCH_LOADS:---clients 1;--clients 16;--clients 64;--clients 64 --read-ratio 0.9}"
for round in $(seq 1 "$repeats"); do
  for load in "${loads[@]}"; do
    echo "== round $round: $load"
    before=$(server_cpu_ms)
    # shellcheck disable=SC2086
    out=$("${cli[@]}" benchmark --duration "$seconds" $load --baseline --output json)
    after=$(server_cpu_ms)
    echo "$out"
    # The last line is the cluster's report; the CPU window also holds the baseline run, when the servers only idle.
    ops=$(echo "$out" | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["operations"])')
    python3 -c "import sys; cpu, ops = $((after - before)), $ops; print(f'server cpu: {cpu} ms for {ops} operations = {1000 * cpu / max(ops, 1):.1f} us/op')"
  done
done
