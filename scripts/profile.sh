#!/usr/bin/env bash
# Where the CPU goes under load: a local 3-node cluster (scripts/cluster.sh) under a 64-client `raft-cli benchmark`,
# each process's user and system CPU over 10 s, then 10 s of `perf record` on the whole machine, summarised per process
# and, for the leader, per assembly (scripts/perf-summary.py). Needs perf (Debian: linux-perf) and root.
#   scripts/profile.sh ["extra benchmark options", e.g. "--read-ratio 0.9"]
#   RAFTKV_HTTP2=1 scripts/profile.sh      the benchmark's clients over HTTP/2 (raft-cli --http2, the nodes' ListenHttp2 ports)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "profile.sh needs perf (apt-get install linux-perf)" >&2; exit 2; }

load="${1:-}"
out=$(mktemp -d)
export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 # JIT-compiled methods get names in /tmp/perf-PID.map
export RAFTKV_CLUSTER_DIR="$out/cluster"
export RAFTKV_ENDPOINTS=http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083
if [ "${RAFTKV_HTTP2:-0}" = "1" ]; then
  export RAFTKV_ENDPOINTS=http://127.0.0.1:8181,http://127.0.0.1:8182,http://127.0.0.1:8183 # the nodes' ListenHttp2 (cluster.sh)
fi
for project in src/RaftKv.Server src/RaftKv.Cli; do dotnet build -c Release "$project" -v quiet -nologo >/dev/null; done
RAFTKV_CLUSTER_SKIP_BUILD=1 scripts/cluster.sh start
bench=""
trap 'scripts/cluster.sh stop >/dev/null; [ -n "$bench" ] && kill "$bench" 2>/dev/null; true' EXIT
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll)

"${cli[@]}" benchmark --duration 20 --clients 64 --read-ratio 0.5 >/dev/null # warm-up, not measured
# shellcheck disable=SC2086
"${cli[@]}" benchmark --duration 40 --clients 64 $load --output json >"$out/bench.json" &
bench=$!
sleep 8
leader=$(curl -s http://127.0.0.1:8081/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
names=(n1 n2 n3 tool)
pids=("$(cat "$RAFTKV_CLUSTER_DIR/n1.pid")" "$(cat "$RAFTKV_CLUSTER_DIR/n2.pid")" "$(cat "$RAFTKV_CLUSTER_DIR/n3.pid")" "$bench")
snapshot() { for i in 0 1 2 3; do awk -v k="${names[$i]}" '{print k, $14, $15}' "/proc/${pids[$i]}/stat"; done; head -1 /proc/stat; }
snapshot >"$out/cpu-a"; sleep 10; snapshot >"$out/cpu-b"
echo "leader $leader; CPU over 10 s:"
paste "$out/cpu-a" "$out/cpu-b" | awk '
  $1 != "cpu" { printf "  %-5s user %5.1f%%  system %5.1f%%  (of one core)\n", $1, ($5 - $2) / 10, ($6 - $3) / 10 }
  $1 == "cpu" { u = $13 - $2 + $14 - $3; s = $15 - $4; i = $16 - $5; w = $17 - $6; q = $18 - $7 + $19 - $8; t = u + s + i + w + q
                printf "  machine: user %.0f%%  system %.0f%%  irq/softirq %.0f%%  idle %.0f%%\n", 100 * u / t, 100 * s / t, 100 * q / t, 100 * (i + w) / t }'
perf record -e cpu-clock -F 499 -g -a -o "$out/perf.data" -- sleep 10 >/dev/null 2>&1
tool_pid=$bench
wait "$bench" || true
bench=""
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("benchmark (perf ran during 10 s of it): {:,.0f} ops/s, p50 {} ms, p99 {} ms, errors {}".format(r["operationsPerSecond"], r["p50Ms"], r["p99Ms"], r["errors"]))' "$out/bench.json"
leader_index=$(( ${leader#n} - 1 ))
perf script -i "$out/perf.data" -F pid,ip,sym,dso 2>/dev/null >"$out/perf.txt"
python3 scripts/perf-summary.py "$out/perf.txt" "${pids[0]}=n1" "${pids[1]}=n2" "${pids[2]}=n3" "$tool_pid=raft-cli" "${pids[$leader_index]}=leader"
echo "perf data and samples kept in $out"
