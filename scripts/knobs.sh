#!/usr/bin/env bash
# Interleaved A/B of server runtime knobs (environment only, no rebuild): each round starts a fresh 3-node cluster per
# configuration, warms it for 15 s, then runs 64-client writes and a 64-client 90%-read mix for 15 s each.
#   scripts/knobs.sh      (needs a Release build of src/RaftKv.Server and src/RaftKv.Cli)
set -uo pipefail
trap '[ -n "${RAFTKV_CLUSTER_DIR:-}" ] && scripts/cluster.sh stop >/dev/null' EXIT
cd "$(dirname "$0")/.."
export RAFTKV_ENDPOINTS=http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll)
configs=("default:" "inline:DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1" "wksgc:DOTNET_gcServer=0" "both:DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_gcServer=0")
for round in 1 2 3; do
  for c in "${configs[@]}"; do
    name=${c%%:*}; envs=${c#*:}
    export RAFTKV_CLUSTER_DIR=$(mktemp -d)/cluster
    env $envs RAFTKV_CLUSTER_SKIP_BUILD=1 scripts/cluster.sh start >/dev/null
    "${cli[@]}" benchmark --duration 15 --clients 64 --read-ratio 0.5 >/dev/null
    w=$("${cli[@]}" benchmark --duration 15 --clients 64 --output json)
    r=$("${cli[@]}" benchmark --duration 15 --clients 64 --read-ratio 0.9 --output json)
    scripts/cluster.sh stop >/dev/null; rm -rf "$(dirname "$RAFTKV_CLUSTER_DIR")"
    python3 -c 'import json,sys; w=json.loads(sys.argv[2]); r=json.loads(sys.argv[3]); print("round", sys.argv[4], sys.argv[1].ljust(8), "writes %8.0f p99 %6.2f | reads90 %8.0f p99 %6.2f" % (w["operationsPerSecond"], w["p99Ms"], r["operationsPerSecond"], r["p99Ms"]))' "$name" "$w" "$r" "$round"
  done
done
