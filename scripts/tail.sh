#!/usr/bin/env bash
# Where the writes' tail goes: a local 3-node cluster (scripts/cluster.sh, fsync on, HTTP/2 clients) under `raft-cli
# benchmark` writes at 1 and at 64 clients, with each node's /metrics read before and after every run: the fsync
# histogram (raftkv_fsync_seconds: the share of syncs slower than 0.8, 1.6, 3.2, 6.4 and 12.8 ms) and the GC (collections
# by generation, total pause, bytes allocated per operation). A write is acknowledged after the leader's sync and one
# follower's, so the share of slow syncs bounds the percentile a write latency target can be met at; a GC pause stops
# every request the node holds. Then the same disk without RaftKv: one, then three processes each writing 200 bytes in
# place and calling fdatasync in a loop (python3), as fast as they can.
#   scripts/tail.sh [seconds-per-run]        (default 20)
# RAFTKV_TAIL_LOADS  ";"-separated client counts (default "1;64"); RAFTKV_TAIL_SKIP_BUILD=1 runs the Release build
# already there; RAFTKV_TAIL_DISK=0 leaves out the runs without RaftKv. Nothing here is a test: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
if [ "${RAFTKV_TAIL_SKIP_BUILD:-}" != "1" ]; then
  for project in src/RaftKv.Server src/RaftKv.Cli; do dotnet build -c Release "$project" -v quiet -nologo >/dev/null; done
fi
work=$(mktemp -d)
export RAFTKV_CLUSTER_DIR="$work/cluster" RAFTKV_HTTP2=1
port="${RAFTKV_CLUSTER_PORT:-8081}"
endpoints="http://127.0.0.1:$((port + 100)),http://127.0.0.1:$((port + 101)),http://127.0.0.1:$((port + 102))"
syncers=()
trap 'for pid in "${syncers[@]}"; do kill "$pid" 2>/dev/null || true; done; scripts/cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
RAFTKV_CLUSTER_SKIP_BUILD=1 scripts/cluster.sh start
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll --endpoints "$endpoints")

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), code of $(git rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"${cli[@]}" benchmark --duration 10 --clients 16 --keys 1000 >/dev/null # warm-up: JIT, connections
metrics() {
  for i in 0 1 2; do
    curl -s "http://127.0.0.1:$((port + i))/metrics" |
      awk -v node="n$((i + 1))" '/^(raftkv_fsync_seconds_bucket|dotnet_collection_count_total|dotnet_gc_pause_seconds_total|dotnet_gc_allocated_bytes_total)/ { print node, $0 }'
  done
}
IFS=';' read -r -a loads <<<"${RAFTKV_TAIL_LOADS:-1;64}"
for clients in "${loads[@]}"; do
  metrics >"$work/before"
  "${cli[@]}" benchmark --duration "$seconds" --clients "$clients" --keys 1000 --output json >"$work/bench.json"
  metrics >"$work/after"
  leader=$(curl -s "http://127.0.0.1:$port/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
  python3 - "$work/bench.json" "$work/before" "$work/after" "$leader" "$clients" <<'EOF'
import collections, json, sys
report = json.load(open(sys.argv[1]))
print("== {} client(s), writes: {:,.0f}/s, p50 {} ms, p90 {} ms, p99 {} ms, p99.9 {} ms, max {} ms, errors {}".format(
    sys.argv[5], report["operationsPerSecond"], report["p50Ms"], report["p90Ms"], report["p99Ms"], report["p999Ms"], report["maxMs"], report["errors"]))
def read(path):
    values = collections.defaultdict(dict)
    for line in open(path):
        node, metric, value = line.split()
        values[node][metric] = float(value)
    return values
before, after = read(sys.argv[2]), read(sys.argv[3])
def delta(node, metric):
    return after[node].get(metric, 0) - before[node].get(metric, 0)
ops = max(report["operations"], 1)
for node in sorted(after):
    syncs = delta(node, 'raftkv_fsync_seconds_bucket{le="+Inf"}')
    slower = ", ".join("{:g} ms {:.2f} %".format(float(le) * 1000, 100 * (syncs - delta(node, 'raftkv_fsync_seconds_bucket{le="%s"}' % le)) / max(syncs, 1))
                       for le in ("0.0008", "0.0016", "0.0032", "0.0064", "0.0128"))
    # GC.CollectionCount semantics: a collection of generation 1 or 2 counts for the younger generations too.
    gcs = [delta(node, 'dotnet_collection_count_total{generation="%d"}' % g) for g in (0, 1, 2)]
    pause = delta(node, "dotnet_gc_pause_seconds_total") * 1000
    allocated = delta(node, "dotnet_gc_allocated_bytes_total") / ops
    print("  {}{}: {:,.0f} syncs, slower than {}".format(node, " (leader)" if node == sys.argv[4] else "", syncs, slower))
    print("      {:.0f} GCs ({:.0f} of generation 1 or 2, {:.0f} of 2), paused {:.0f} ms in all ({:.2f} ms each), {:,.0f} bytes allocated per write".format(
        *gcs, pause, pause / max(gcs[0], 1), allocated))
EOF
done
scripts/cluster.sh stop >/dev/null

[ "${RAFTKV_TAIL_DISK:-1}" = "1" ] || exit 0
cat >"$work/sync.py" <<'EOF'
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"\0" * (64 << 20)); os.fsync(fd)  # written once first, as RaftKv preallocates its segments
latencies, offset, end = [], 0, time.monotonic() + seconds
while time.monotonic() < end:
    start = time.perf_counter()
    os.pwrite(fd, b"x" * 200, offset); os.fdatasync(fd)
    latencies.append((time.perf_counter() - start) * 1000)
    offset = (offset + 200) % (64 << 20)
latencies.sort()
n = len(latencies)
print("  {}: {:,} syncs, p50 {:.2f} ms, p99 {:.2f} ms, p99.9 {:.2f} ms, max {:.2f} ms".format(
    os.path.basename(path), n, latencies[n // 2], latencies[int(n * 0.99)], latencies[int(n * 0.999)], latencies[-1]))
os.close(fd); os.unlink(path)
EOF
echo "== the same disk without RaftKv: 200 bytes written in place and fdatasync, in a loop for $seconds s"
python3 "$work/sync.py" "$work/alone" "$seconds"
echo "== three such loops at once"
for i in 1 2 3; do python3 "$work/sync.py" "$work/together-$i" "$seconds" & syncers+=($!); done
for pid in "${syncers[@]}"; do wait "$pid"; done
syncers=()
