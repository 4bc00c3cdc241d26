#!/usr/bin/env bash
# Where the leader's bytes go: a local 3-node cluster (scripts/cluster.sh, HTTP/2 clients) under a `raft-cli benchmark`
# load, `dotnet-trace collect --profile gc-verbose` on the leader for some seconds of it (the runtime samples an
# allocation about every 100 KB, with its type and stack), then bench/RaftKv.AllocationReport on the trace: the sampled
# bytes by type, by frame on the stack, and, for the types named, by their nearest frames. The measure to check a change
# with is scripts/tail.sh's bytes allocated per write; this says where to look. Needs dotnet-trace
# (`dotnet tool install -g dotnet-trace`; found on PATH or in ~/.dotnet/tools).
#   scripts/allocations.sh ["benchmark options"] [TYPE-SUBSTRING ...]     (default load: "--clients 1 --keys 1000")
# e.g. scripts/allocations.sh "--clients 64 --keys 100000" "LogEntry[]" "String"
# RAFTKV_ALLOC_SECONDS seconds traced (default 10); RAFTKV_ALLOC_TOP lines per list (default 30); the trace is kept in
# the temporary directory the script names. Nothing here is a test: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."

load="${1:---clients 1 --keys 1000}"
shift || true
seconds="${RAFTKV_ALLOC_SECONDS:-10}"
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] && [ "$seconds" -le 59 ] || { echo "RAFTKV_ALLOC_SECONDS: 1 to 59" >&2; exit 2; }
trace_tool=$(command -v dotnet-trace || true)
[ -z "$trace_tool" ] && [ -x "$HOME/.dotnet/tools/dotnet-trace" ] && trace_tool="$HOME/.dotnet/tools/dotnet-trace"
[ -n "$trace_tool" ] || { echo "allocations.sh needs dotnet-trace: dotnet tool install -g dotnet-trace" >&2; exit 2; }

for project in src/RaftKv.Server src/RaftKv.Cli bench/RaftKv.AllocationReport; do
  dotnet build -c Release "$project" -v quiet -nologo >/dev/null
done
work=$(mktemp -d)
export RAFTKV_CLUSTER_DIR="$work/cluster" RAFTKV_HTTP2=1
port="${RAFTKV_CLUSTER_PORT:-8081}"
endpoints="http://127.0.0.1:$((port + 100)),http://127.0.0.1:$((port + 101)),http://127.0.0.1:$((port + 102))"
bench=""
trap '[ -n "$bench" ] && kill "$bench" 2>/dev/null; scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT
RAFTKV_CLUSTER_SKIP_BUILD=1 scripts/cluster.sh start
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll --endpoints "$endpoints")

"${cli[@]}" benchmark --duration 10 --clients 16 --keys 1000 >/dev/null # warm-up: JIT, connections
leader=$(curl -s "http://127.0.0.1:$port/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
# shellcheck disable=SC2086
"${cli[@]}" benchmark --duration $((seconds + 6)) $load --output json >"$work/bench.json" &
bench=$!
sleep 3
"$trace_tool" collect -p "$(cat "$RAFTKV_CLUSTER_DIR/$leader.pid")" --profile gc-verbose \
  --duration "00:00:00:$(printf '%02d' "$seconds")" -o "$work/leader.nettrace" >/dev/null
wait "$bench"
bench=""
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("== leader {}, load: {}; {:,.0f} ops/s, p50 {} ms, p99 {} ms, errors {}".format(sys.argv[2], sys.argv[3], r["operationsPerSecond"], r["p50Ms"], r["p99Ms"], r["errors"]))' \
  "$work/bench.json" "$leader" "$load"
dotnet bench/RaftKv.AllocationReport/bin/Release/net10.0/RaftKv.AllocationReport.dll "$work/leader.nettrace" "${RAFTKV_ALLOC_TOP:-30}" "$@"
echo "== trace kept in $work/leader.nettrace"
