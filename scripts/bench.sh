#!/usr/bin/env bash
# The README's throughput and latency figures: a local 3-node cluster (scripts/cluster.sh, fsync on, loopback), a
# warm-up, then `raft-cli benchmark` for writes at 1, 16 and 64 clients and a 90%-read mix (linearizable) at 64 clients.
# Each run is preceded, in the same process, by the same load against a do-nothing endpoint (--baseline): what the tool
# can drive by itself at that moment on this machine.
#   scripts/bench.sh [seconds-per-run] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-15}"
repeats="${2:-3}"
export RAFTKV_CLUSTER_DIR="${RAFTKV_CLUSTER_DIR:-$(mktemp -d)/cluster}"
export RAFTKV_ENDPOINTS="http://127.0.0.1:${RAFTKV_CLUSTER_PORT:-8081},http://127.0.0.1:$((${RAFTKV_CLUSTER_PORT:-8081} + 1)),http://127.0.0.1:$((${RAFTKV_CLUSTER_PORT:-8081} + 2))"

for project in src/RaftKv.Server src/RaftKv.Cli; do dotnet build -c Release "$project" -v quiet -nologo >/dev/null; done
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll)
RAFTKV_CLUSTER_SKIP_BUILD=1 scripts/cluster.sh start
trap 'scripts/cluster.sh stop >/dev/null; rm -rf "$RAFTKV_CLUSTER_DIR"' EXIT

echo "== warm-up (JIT, tiered compilation, connection pools): 30 s, not counted"
"${cli[@]}" benchmark --duration 30 --clients 64 --read-ratio 0.5 --baseline >/dev/null

for round in $(seq 1 "$repeats"); do
  for load in "--clients 1" "--clients 16" "--clients 64" "--clients 64 --read-ratio 0.9"; do
    echo "== round $round: $load"
    # shellcheck disable=SC2086
    "${cli[@]}" benchmark --duration "$seconds" $load --baseline --output json
  done
done
