#!/usr/bin/env bash
# Scale: a 3-node RaftKv (scripts/cluster.sh: loopback, fsync on, default settings) filled with N keys of V-byte values
# (`raft-cli benchmark --fill`), then:
#   1. memory: the raw key + value bytes, and each node's resident memory (VmRSS, of which RssAnon, from /proc) and
#      managed heap (dotnet_gc_heap_size_bytes from /metrics: the GC heap after its last collection), when empty and
#      after the fill; then again after a full blocking GC, which `dotnet-gcdump collect` induces, when dotnet-gcdump is
#      installed; and the leader's heap counted by type (`dotnet-dump` and `dumpheap -stat`), when dotnet-dump is;
#   2. snapshots under a write load over the same N keys: /metrics of the three nodes every 0.25 s give each snapshot's
#      duration (raftkv_snapshot_seconds), its end, and the leader's applied index; writes/s while the leader takes a
#      snapshot against the same number of seconds just before it, and over all the load's seconds with and without one;
#   3. catch-up: a fourth node started with --join and added as a learner (raft-cli member add); the time from the add
#      until it has applied the leader's commit, whether it got there by a snapshot (its log says), and the file's size.
# One summary table at the end. A benchmark, not a test: CI does not run it and nothing here asserts a timing.
#   scripts/scale.sh [keys] [value-bytes]              (default 1000000 keys of 128 B)
# RAFTKV_SCALE_LOAD_SECONDS  seconds of the write load in step 2 (default 60); RAFTKV_SCALE_CLIENTS its clients (16)
# RAFTKV_SCALE_FILL_CLIENTS  clients of the fill (default 64)
# RAFTKV_SCALE_GCDUMP=0      do not run dotnet-gcdump and dotnet-dump (each used when found on PATH or in
#                            ~/.dotnet/tools; `dotnet tool install -g dotnet-gcdump dotnet-dump`): no forced GC, no heap by type
# RAFTKV_SCALE_OUT           where the raw output goes (default bench/results/<date>-scale-<commit>.txt; the table is its tail)
# RAFTKV_SCALE_SKIP_BUILD=1  runs the Release build already there (build it first, e.g. under a machine's build lock)
# RAFTKV_SCALE_KEEP=1        keeps the data directories and logs (in a temporary directory it names) afterwards
# RAFTKV_CLUSTER_PORT        client ports from here (default 8081; the learner n4 takes +3), peers at +1000
# Settings of the nodes pass through as usual (RAFTKV_<Section>__<Name>, docs/configuration.md); the script sets none,
# so the snapshot settings are the defaults (RaftKv:Loop:SnapshotThresholdEntries 10,000, ...Bytes 64 MiB,
# SnapshotMinAppliedShare 1).
set -euo pipefail
cd "$(dirname "$0")/.."

keys="${1:-1000000}"
value="${2:-128}"
load_seconds="${RAFTKV_SCALE_LOAD_SECONDS:-60}"
clients="${RAFTKV_SCALE_CLIENTS:-16}"
fill_clients="${RAFTKV_SCALE_FILL_CLIENTS:-64}"
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src scripts || echo '+changes')"
out="${RAFTKV_SCALE_OUT:-bench/results/$(date -u +%Y-%m-%d-%H%M)-scale-$commit.txt}"
mkdir -p "$(dirname "$out")"
exec > >(tee "$out") 2>&1

gcdump=""
if [ "${RAFTKV_SCALE_GCDUMP:-1}" != "0" ]; then
  gcdump=$(command -v dotnet-gcdump || true)
  [ -z "$gcdump" ] && [ -x "$HOME/.dotnet/tools/dotnet-gcdump" ] && gcdump="$HOME/.dotnet/tools/dotnet-gcdump"
  [ -z "$gcdump" ] && echo "== dotnet-gcdump not found: no forced GC (dotnet tool install -g dotnet-gcdump)"
fi

if [ "${RAFTKV_SCALE_SKIP_BUILD:-}" != "1" ]; then
  dotnet build -c Release src/RaftKv.Server -v quiet -nologo >/dev/null
  dotnet build -c Release src/RaftKv.Cli -v quiet -nologo >/dev/null
fi
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll)
server=src/RaftKv.Server/bin/Release/net10.0/RaftKv.Server.dll

work="$(mktemp -d)"
export RAFTKV_CLUSTER_DIR="$work/cluster"
base="${RAFTKV_CLUSTER_PORT:-8081}"
endpoints="http://127.0.0.1:$base,http://127.0.0.1:$((base + 1)),http://127.0.0.1:$((base + 2))"
load=""
poller=""
stop_all() {
  for pid in $load $poller; do kill "$pid" 2>/dev/null || true; done
  # cluster.sh stops every n*.pid in its directory: the learner's too.
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  if [ "${RAFTKV_SCALE_KEEP:-}" = "1" ]; then echo "== kept data and logs in $work"; else rm -rf "$work"; fi
}
trap stop_all EXIT

for port in "$base" $((base + 1)) $((base + 2)) $((base + 3)) $((base + 1000)) $((base + 1001)) $((base + 1002)) $((base + 1003)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "scale.sh: port $port is taken; set RAFTKV_CLUSTER_PORT" >&2
    exit 1
  fi
done

RAFTKV_CLUSTER_SKIP_BUILD=1 scripts/cluster.sh start
pid_of() { cat "$RAFTKV_CLUSTER_DIR/$1.pid"; }
port_of() { echo $((base + ${1#n} - 1)); }
status_of() { curl -s --max-time 5 "http://127.0.0.1:$(port_of "$1")/status"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
leader() { status_of n1 | json 'd["leader"]'; }
metric() { # metric NODE NAME: the value of an unlabelled metric on /metrics
  curl -s --max-time 5 "http://127.0.0.1:$(port_of "$1")/metrics" | awk -v m="$2" '$1 == m { v = $2 } END { print v }'
}
proc_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; } # proc_kib PID VmRSS|RssAnon|VmHWM: KiB

echo "== sitting: $(date -u '+%Y-%m-%d %H:%M UTC'), code of $commit, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $keys keys of $value B values; fill with $fill_clients clients; a ${load_seconds} s write load with $clients clients"
raw=$(python3 -c "n=$keys; print(sum(len('bench-'+str(k)) for k in range(n)) + n*$value)")
echo "== raw key + value bytes: $raw (keys 'bench-0'.., ASCII: UTF-8 bytes = characters)"

mem_table() { # mem_table LABEL: one line per node, also kept in $work/memory.tsv
  for node in n1 n2 n3 ${EXTRA_NODE:-}; do
    [ -e "$RAFTKV_CLUSTER_DIR/$node.pid" ] || continue
    local pid rss anon hwm heap total committed
    pid=$(pid_of "$node")
    rss=$(proc_kib "$pid" VmRSS); anon=$(proc_kib "$pid" RssAnon); hwm=$(proc_kib "$pid" VmHWM)
    heap=$(metric "$node" dotnet_gc_heap_size_bytes); total=$(metric "$node" dotnet_total_memory_bytes)
    committed=$(metric "$node" dotnet_gc_committed_bytes)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$node" "$rss" "$anon" "$hwm" "$heap" "$total" "$committed" >>"$work/memory.tsv"
    python3 -c "
print(f'   {\"$node\"}: VmRSS {$rss/1024:,.0f} MiB (RssAnon {$anon/1024:,.0f}, peak VmHWM {$hwm/1024:,.0f}); GC heap after last GC {float(\"$heap\")/2**20:,.0f} MiB, GC.GetTotalMemory {float(\"$total\")/2**20:,.0f} MiB, GC committed {float(\"$committed\")/2**20:,.0f} MiB')"
  done
}

# Waits until every node has applied what the leader committed and its applied index, snapshot index and snapshot count
# stayed the same over two polls 3 s apart (no snapshot finished meanwhile; at most 300 s). A snapshot does not follow
# every 10,000 entries (Loop:SnapshotMinAppliedShare), so the last one may lie far behind the applied index.
settle() {
  local last="" before="" now
  for _ in $(seq 1 300); do
    now=$(for node in n1 n2 n3; do
      curl -s --max-time 5 "http://127.0.0.1:$(port_of "$node")/metrics" |
        awk '$1 == "raftkv_applied_index" { a = $2 } $1 == "raftkv_commit_index" { c = $2 } $1 == "raftkv_snapshot_index" { s = $2 }
             $1 == "raftkv_snapshots_total" { n = $2 } END { printf "%s:%s:%s:%s ", a, c, s, n }'
    done)
    if [ "$now" = "$last" ] && [ "$now" = "$before" ] && python3 - "$now" <<'EOF'
import sys
nodes = [tuple(float(x) for x in n.split(":")) for n in sys.argv[1].split()]
commit = max(c for a, c, s, n in nodes)
sys.exit(0 if all(a == commit for a, c, s, n in nodes) else 1)
EOF
    then return 0; fi
    before=$last
    last=$now
    sleep 3
  done
  echo "== did not settle in 300 s: $now"
}

echo "== memory, empty cluster (after start)"
mem_table empty

echo "== fill: every one of $keys keys once, $value B values, $fill_clients clients"
fill_start=$(date +%s.%N)
"${cli[@]}" --endpoints "$endpoints" benchmark --fill --clients "$fill_clients" --keys "$keys" --value-size "$value" --output json |
  tee "$work/fill.json"
fill_end=$(date +%s.%N)
echo "== fill took $(python3 -c "print(f'{$fill_end - $fill_start:.0f}')") s; waiting for every node to apply it and finish its snapshots"
settle
for node in n1 n2 n3; do
  count=$(metric "$node" raftkv_snapshots_total); sum=$(metric "$node" raftkv_snapshot_seconds_sum)
  echo "   $node took $count snapshots while filling, $(python3 -c "print(f'{$sum:.1f} s in all, {$sum / max($count, 1):.2f} s each on average')")"
  printf '%s\t%s\t%s\n' "$node" "$count" "$sum" >>"$work/fill-snapshots.tsv"
done
echo "== memory after the fill (settled)"
mem_table filled
if [ -n "$gcdump" ]; then
  echo "== dotnet-gcdump collect on each node, for the full blocking GC it induces (the dump files are not kept)"
  for node in n1 n2 n3; do
    "$gcdump" collect -p "$(pid_of "$node")" -o "$work/$node.gcdump" >/dev/null
  done
  echo "== memory after the forced GC"
  mem_table gc
  rm -f "$work"/*.gcdump
fi
# The gcdump's type counts are lossy on a heap this size before .NET 11 (it says so); a heap dump's are exact.
dump=$(command -v dotnet-dump || true)
[ -z "$dump" ] && [ -x "$HOME/.dotnet/tools/dotnet-dump" ] && dump="$HOME/.dotnet/tools/dotnet-dump"
if [ -n "$dump" ] && [ "${RAFTKV_SCALE_GCDUMP:-1}" != "0" ]; then
  lead=$(leader)
  echo "== $lead's managed heap by type (dotnet-dump collect --type Heap, then dumpheap -stat: the 25 largest; the dump is not kept)"
  "$dump" collect -p "$(pid_of "$lead")" --type Heap -o "$work/heap.dump" >/dev/null
  "$dump" analyze "$work/heap.dump" -c "dumpheap -stat" -c exit | awk '/^Total/ { total = $0 } / [0-9,]+ +[0-9,]+ / { rows[++n] = $0 } END { for (i = (n > 25 ? n - 24 : 1); i <= n; i++) print rows[i]; print total }'
  rm -f "$work/heap.dump"
fi

# Step 2: the write load, watched every 0.25 s.
echo "== write load: ${load_seconds} s, $clients clients, over the $keys keys (each write replaces a value), metrics every 0.25 s"
python3 - "$base" "$work/poll.tsv" "$(pid_of n1) $(pid_of n2) $(pid_of n3)" <<'EOF' &
import sys, time, urllib.request
base, path, pids = int(sys.argv[1]), sys.argv[2], sys.argv[3].split()
wanted = ("raftkv_applied_index", "raftkv_commit_index", "raftkv_snapshots_total", "raftkv_snapshot_seconds_sum",
          "raftkv_snapshot_bytes", 'raftkv_role{role="leader"}')
with open(path, "w") as out:
    while True:
        for i in range(3):
            t = time.time()
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{base + i}/metrics", timeout=2).read().decode()
            except Exception:
                continue
            values = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith(wanted))
            rss = next((l.split()[1] for l in open(f"/proc/{pids[i]}/status") if l.startswith("VmRSS:")), "0")
            print(f"{t:.3f}\tn{i + 1}\t" + "\t".join(values.get(w, "0").strip() for w in wanted) + f"\t{rss}", file=out, flush=True)
        time.sleep(0.25)
EOF
poller=$!
sleep 1
load_start=$(date +%s.%N)
"${cli[@]}" --endpoints "$endpoints" benchmark --duration "$load_seconds" --clients "$clients" --keys "$keys" --value-size "$value" \
  --output json | tee "$work/load.json"
load_end=$(date +%s.%N)
sleep 1
kill "$poller" 2>/dev/null || true
wait "$poller" 2>/dev/null || true
poller=""
python3 - "$work/poll.tsv" "$load_start" "$load_end" "$work/load.json" "$work/snapshots.tsv" <<'EOF'
import json, sys
from collections import defaultdict
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
series = defaultdict(list)  # node -> [(t, applied, commit, count, seconds_sum, bytes, is_leader, rss_kib)]
for r in rows:
    series[r[1]].append((float(r[0]), *map(float, r[2:])))
leader = max(series, key=lambda n: sum(s[6] for s in series[n]))
# Each snapshot: its end is taken as the middle of the poll interval in which the count rose; its start, that less its duration.
windows = defaultdict(list)
for node, s in series.items():
    for a, b in zip(s, s[1:]):
        rose = int(b[3] - a[3])
        if rose > 0:
            end = (a[0] + b[0]) / 2
            duration = (b[4] - a[4]) / rose  # several in one interval: their mean
            windows[node].append((end - duration * rose, end, duration, b[5], rose))
def applied_at(t):  # the leader's applied index at time t, linear between polls
    s = series[leader]
    for a, b in zip(s, s[1:]):
        if a[0] <= t <= b[0]:
            return a[1] + (b[1] - a[1]) * (t - a[0]) / (b[0] - a[0])
    return None
def rate(a, b):
    x, y = applied_at(a), applied_at(b)
    return None if x is None or y is None or b <= a else (y - x) / (b - a)
def busy(a, b, nodes):
    return any(w[0] < b and w[1] > a for n in nodes for w in windows[n])
print(f"leader {leader}; snapshots during the load (start and end in s from the load's start; the end within 0.13 s):")
with open(sys.argv[5], "w") as out:
    for node in sorted(windows):
        for start, end, duration, size, rose in windows[node]:
            if end < t0 or start > t1 + 1:
                continue
            line = f"  {node}: {start - t0:6.1f} .. {end - t0:6.1f}  {duration:6.2f} s  file {size / 2**20:,.0f} MiB" + (f"  ({rose} in one poll interval: their mean)" if rose > 1 else "")
            if node == leader:
                print(f"snap\t{duration:.3f}\t{size:.0f}\t{int(start >= t0 and end <= t1)}", file=out)
            if node == leader and t0 + 2 <= start < t1:
                # Against the same number of seconds just before it (or as many as the load had before it, its first
                # second left out): same clients, same load.
                stop, since = min(end, t1), max(t0 + 1, start - duration)
                during, before = rate(start, stop), rate(since, start)
                clean = not busy(since, start, series)
                line += f"  writes/s during {during:,.0f}, the {start - since:.1f} s before {before:,.0f} ({'no node snapshotting then' if clean else 'a node was snapshotting then too'})"
                print(f"pair\t{stop - start:.3f}\t{during:.1f}\t{start - since:.3f}\t{before:.1f}\t{int(clean)}", file=out)
            print(line)
# Every poll interval of the load (its first second left out), by what ran in it.
s = [p for p in series[leader] if t0 + 1 <= p[0] <= t1]
classes = defaultdict(lambda: [0.0, 0.0])
longest_flat = 0.0
flat_since = None
for a, b in zip(s, s[1:]):
    if busy(a[0], b[0], [leader]):
        kind = "the leader snapshotting"
    elif busy(a[0], b[0], series):
        kind = "only followers snapshotting"
    else:
        kind = "no node snapshotting"
    classes[kind][0] += b[0] - a[0]
    classes[kind][1] += b[1] - a[1]
    if b[1] == a[1]:
        flat_since = a[0] if flat_since is None else flat_since
        longest_flat = max(longest_flat, b[0] - flat_since)
    else:
        flat_since = None
print("writes/s by what ran at the time (the leader's applied index, polled):")
for kind, (seconds, writes) in sorted(classes.items()):
    print(f"  {kind}: {seconds:.1f} s, {writes / seconds if seconds else 0:,.0f} writes/s")
total = sum(c[0] for c in classes.values())
r = json.load(open(sys.argv[4]))
print(f"the leader was snapshotting {classes['the leader snapshotting'][0] / total:.0%} of the time; longest stretch with no write applied on the leader: "
      f"{longest_flat:.2f} s (polls 0.25 s apart); the load's own figures: {r['operationsPerSecond']:,.0f} writes/s, p50 {r['p50Ms']} ms, p99 {r['p99Ms']} ms, max {r['maxMs']} ms, {r['errors']} errors")
with open(sys.argv[5], "a") as out:
    for kind, (seconds, writes) in classes.items():
        print(f"class\t{kind}\t{seconds:.1f}\t{writes / seconds if seconds else 0:.1f}", file=out)
    print(f"load\t{r['operationsPerSecond']:.1f}\t{r['p99Ms']}\t{r['maxMs']}\t{r['errors']}\t{longest_flat:.2f}\t{classes['the leader snapshotting'][0] / total:.3f}", file=out)
EOF

# Step 3: a new learner.
echo "== a fourth node: started with --join, then added as a learner; timed from the add until it has applied the leader's commit"
settle
lead=$(leader)
commit_index=$(status_of "$lead" | json 'd["commit"]')
nohup dotnet exec "$server" --node-id n4 --join "http://127.0.0.1:$base" --peer "http://127.0.0.1:$((base + 1003))" \
  --http "http://127.0.0.1:$((base + 3))" --data-dir "$RAFTKV_CLUSTER_DIR/data/n4" >"$RAFTKV_CLUSTER_DIR/n4.log" 2>&1 &
echo $! >"$RAFTKV_CLUSTER_DIR/n4.pid"
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$((base + 3))/health" >/dev/null 2>&1 && break; sleep 0.1; done
add_start=$(date +%s.%N)
"${cli[@]}" --endpoints "$endpoints" member add n4 --peer-url "http://127.0.0.1:$((base + 1003))" --client-url "http://127.0.0.1:$((base + 3))"
caught=""
for _ in $(seq 1 1200); do # at most 120 s
  applied=$(status_of n4 | grep -o '"applied":[0-9]*' | cut -d: -f2 || true)
  if [ "${applied:-0}" -ge "$commit_index" ]; then caught=$(date +%s.%N); break; fi
  sleep 0.1
done
grep -E "snapshot" "$RAFTKV_CLUSTER_DIR/n4.log" "$RAFTKV_CLUSTER_DIR/$lead.log" | grep -E "n4|received|installed" | tail -n 6 || true
n4_snapshot=$(find "$RAFTKV_CLUSTER_DIR/data/n4/snapshots" -name '*.snap' -printf '%s\n' 2>/dev/null | sort -n | tail -n 1)
echo "== n4's status: $(status_of n4 | json '{k: d[k] for k in ("role", "commit", "applied", "snapshotIndex")}' 2>/dev/null)"
echo "== memory with n4 caught up (n4 loaded its state from the snapshot; the others applied it)"
EXTRA_NODE=n4 mem_table caught

for node in n1 n2 n3; do # over the whole sitting: leader changes this node saw, and the runtime's GC pauses
  curl -s --max-time 5 "http://127.0.0.1:$(port_of "$node")/metrics" | awk -v n="$node" '
    $1 == "raftkv_leader_changes_total" { l = $2 } $1 == "dotnet_gc_pause_seconds_total" { p = $2 }
    $1 == "dotnet_collection_count_total{generation=\"2\"}" { g = $2 } END { printf "%s\t%s\t%s\t%s\n", n, l, p, g }' >>"$work/runtime.tsv"
done
python3 - "$work" "$raw" "$keys" "$value" "$add_start" "${caught:-}" "$commit_index" "${n4_snapshot:-0}" "$RAFTKV_CLUSTER_DIR/n4.log" "$fill_start" "$fill_end" <<'EOF'
import datetime, json, re, sys
from collections import defaultdict
work, raw, keys, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
add, caught, commit, n4_file, n4_log = float(sys.argv[5]), sys.argv[6], int(sys.argv[7]), int(sys.argv[8]), sys.argv[9]
fill_seconds = float(sys.argv[11]) - float(sys.argv[10])
memory = defaultdict(dict)
for line in open(f"{work}/memory.tsv"):
    label, node, rss, anon, hwm, heap, total, committed = line.split("\t")
    memory[label][node] = (int(rss) * 1024, int(anon) * 1024, int(hwm) * 1024, float(heap), float(total))
snaps = [l.rstrip("\n").split("\t") for l in open(f"{work}/snapshots.tsv")]
leader_snaps = [tuple(map(float, s[1:])) for s in snaps if s[0] == "snap"]  # duration, size, within the load
pairs = [tuple(map(float, s[1:])) for s in snaps if s[0] == "pair"]  # seconds during, writes/s during, seconds before, writes/s before, clean
classes = {s[1]: (float(s[2]), float(s[3])) for s in snaps if s[0] == "class"}
load = next(s for s in snaps if s[0] == "load")
fill = json.load(open(f"{work}/fill.json"))
# n4's log: when the snapshot's last chunk arrived and when it was loaded (the log's clock is local time of day).
def at(pattern):
    for line in open(n4_log):
        if re.search(pattern, line):
            h, m, s = line[:12].split(":")
            day = datetime.datetime.fromtimestamp(add).replace(hour=int(h), minute=int(m), second=0, microsecond=0)
            return day.timestamp() + float(s) - add
    return None
received, installed = at(r"received snapshot"), at(r"installed the leader's snapshot")
MiB = 2**20
def per_node(label, i):
    return " · ".join(f"{memory[label][n][i] / MiB:,.0f}" for n in sorted(memory[label]))
def worst(label, i=0):
    return max(v[i] for n, v in memory[label].items() if n != "n4")
print()
print(f"== summary: {keys:,} keys of {value} B; raw key + value bytes {raw / MiB:,.1f} MiB ({raw:,} B); 2x raw = {2 * raw / MiB:,.0f} MiB")
print()
print("| what | figure | target |")
print("|---|---|---|")
print(f"| fill: {keys:,} writes, {fill['settings']['clients']} clients | {fill_seconds:,.0f} s, {fill['operationsPerSecond']:,.0f} writes/s, p99 {fill['p99Ms']:,.1f} ms, {fill['errors']} errors | — |")
print(f"| VmRSS per node, empty (n1 · n2 · n3) | {per_node('empty', 0)} MiB | — |")
print(f"| VmRSS per node, filled (n1 · n2 · n3) | {per_node('filled', 0)} MiB, {worst('filled') / raw:.1f}x raw | ≤ 2x raw: {'met' if worst('filled') <= 2 * raw else 'missed'} |")
growth = max(memory['filled'][n][0] - memory['empty'][n][0] for n in memory['empty'])
print(f"| VmRSS growth from empty to filled, largest of the nodes | {growth / MiB:,.0f} MiB, {growth / raw:.1f}x raw | — |")
print(f"| GC heap after last GC, filled | {per_node('filled', 3)} MiB, {worst('filled', 3) / raw:.1f}x raw | — |")
if "gc" in memory:
    print(f"| VmRSS per node after a forced full GC | {per_node('gc', 0)} MiB, {worst('gc') / raw:.1f}x raw | ≤ 2x raw: {'met' if worst('gc') <= 2 * raw else 'missed'} |")
    print(f"| GC heap after the forced GC | {per_node('gc', 3)} MiB, {worst('gc', 3) / raw:.1f}x raw | — |")
print(f"| VmRSS after catch-up (n1 · n2 · n3 · n4) | {per_node('caught', 0)} MiB | — |")
fill_snaps = [l.split("\t") for l in open(f"{work}/fill-snapshots.tsv")]
print(f"| snapshots taken while filling (n1 · n2 · n3) | {' · '.join(c for n, c, t in fill_snaps)}, {sum(float(t) for n, c, t in fill_snaps) / max(1, sum(int(c) for n, c, t in fill_snaps)):.1f} s each on average | — |")
if leader_snaps:
    whole = [d for d, size, inside in leader_snaps if inside] or [d for d, size, inside in leader_snaps]
    print(f"| time to take a snapshot on the leader at {keys:,} keys, during the load | {' · '.join(f'{d:.1f}' for d in whole)} s; file {leader_snaps[-1][1] / MiB:,.0f} MiB | — |")
if pairs:
    during = sum(p[0] * p[1] for p in pairs) / sum(p[0] for p in pairs)
    before = sum(p[2] * p[3] for p in pairs) / sum(p[2] for p in pairs)
    print(f"| writes/s while the leader snapshots, against the seconds just before ({len(pairs)} snapshots: {sum(p[0] for p in pairs):.0f} s against {sum(p[2] for p in pairs):.0f} s{'' if all(p[4] for p in pairs) else '; a node was snapshotting in some of the seconds before'}) | {during:,.0f} against {before:,.0f} ({during / before:.2f}x) | writes go on: {'met' if during > 0 and float(load[5]) < 1 else 'missed'} (longest stretch with none applied {load[5]} s) |")
for kind, (seconds, rate) in sorted(classes.items()):
    print(f"| writes/s over the load's seconds with {kind} | {rate:,.0f} ({seconds:.0f} s) | — |")
print(f"| the load: {float(load[1]):,.0f} writes/s overall | p99 {float(load[2]):,.0f} ms, max {float(load[3]):,.0f} ms, {load[4]} errors; longest stretch with no write applied {load[5]} s; leader snapshotting {float(load[6]):.0%} of the time | — |")
runtime = [l.rstrip("\n").split("\t") for l in open(f"{work}/runtime.tsv")]
print(f"| over the sitting (n1 · n2 · n3): leader changes seen; GC pause; gen2 GCs | {' · '.join(r[1] for r in runtime)}; {' · '.join(f'{float(r[2]):.0f}' for r in runtime)} s; {' · '.join(r[3] for r in runtime)} | — |")
if caught:
    took = float(caught) - add
    how = "by snapshot" if installed is not None else "by log entries (no snapshot installed)"
    split = f" (snapshot received {received:.1f} s after the add, loaded {installed:.1f} s after)" if installed is not None and received is not None else ""
    print(f"| new learner n4 caught up to commit {commit:,} | {took:.1f} s {how}{split}; snapshot file {n4_file / MiB:,.0f} MiB | < 10 s: {'met' if took < 10 else 'missed'} |")
else:
    print(f"| new learner n4 caught up to commit {commit:,} | not within 120 s | < 10 s: missed |")
EOF
