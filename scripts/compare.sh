#!/usr/bin/env bash
# RaftKv and etcd side by side, in one sitting, driven by one tool: a 3-node RaftKv (scripts/cluster.sh) and a 3-node
# etcd (Debian's etcd-server; installed when missing), both on loopback with fsync on, kept running for the whole sitting.
# Both are filled (every key written once) and warmed; then every cell (a load: writes or 90 % linearizable reads, a
# number of clients, a value size) runs RaftKv, etcd, RaftKv, etcd, ... (pairs of runs), each run `raft-cli benchmark`
# for the same seconds over the same keys, with the same value bytes. After each run: the servers' CPU time (user +
# system of all three processes of that system, from /proc) divided by the operations it served. At the end one table:
# medians of the pairs for ops/s, p50, p99, server CPU per operation and the load generator's (raft-cli's own user +
# system time, from bash's `times`, per operation: it shares the cores; its start-up, under a second of CPU, is counted
# too, so it reads high on short runs), and RaftKv/etcd ratios.
#   scripts/compare.sh [seconds-per-run] [pairs]        (default 10 s, 3 pairs)
# RAFTKV_COMPARE_CELLS  ";"-separated cells "MIX CLIENTS VALUE_BYTES", MIX writes or reads90; default: all 16 cells,
#                       1, 16, 64 and 256 clients, writes and reads90, 128 and 16384 B (e.g. "writes 1 128;reads90 64 128")
# RAFTKV_COMPARE_KEYS   the key space (default 100000); RAFTKV_COMPARE_WARMUP seconds per system (default 30)
# RAFTKV_COMPARE_OUT    where the raw output goes (default bench/results/<date>-<commit>.txt; the table is its tail)
# RAFTKV_COMPARE_ETCD_PORT  etcd client ports from here (default 12379, peers at +100); RAFTKV_CLUSTER_PORT moves RaftKv's
# RAFTKV_COMPARE_SKIP_BUILD=1 runs the Release build already there (build it first, e.g. under a machine's build lock)
# RAFTKV_COMPARE_KEEP=1 keeps both clusters' data directories and logs (in a temporary directory it names) afterwards
# RAFTKV_COMPARE_HTTP2=0 drives RaftKv over HTTP/1.1, a connection per client; by default its clients share HTTP/2
#                       connections (raft-cli --http2 to the nodes' ListenHttp2 ports), as etcd's share one gRPC connection
#
# The two clusters stay up for the whole sitting, rather than being restarted per cell: a restart would put RaftKv's
# JIT warm-up and etcd's fresh connections into every cell, and refilling 100,000 keys per cell costs minutes. The idle
# one sends only heartbeats while the other is measured. Each sitting starts from empty data directories.
# etcd runs with its defaults but for periodic auto-compaction (keep 1 minute of history, as production does; RaftKv
# keeps no history) and an 8 GiB backend quota, so that 16 KiB values do not fill it within the sitting.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
pairs="${2:-3}"
keys="${RAFTKV_COMPARE_KEYS:-100000}"
warmup="${RAFTKV_COMPARE_WARMUP:-30}"
cells="${RAFTKV_COMPARE_CELLS:-}"
if [ -z "$cells" ]; then
  for size in 128 16384; do
    for mix in writes reads90; do
      for clients in 1 16 64 256; do cells="${cells:+$cells;}$mix $clients $size"; done
    done
  done
fi
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src scripts || echo '+changes')"
out="${RAFTKV_COMPARE_OUT:-bench/results/$(date -u +%Y-%m-%d-%H%M)-$commit.txt}"
mkdir -p "$(dirname "$out")"
exec > >(tee "$out") 2>&1

if ! command -v etcd >/dev/null; then
  echo "== etcd is not installed: installing Debian's etcd-server (apt-get install -y etcd-server)"
  if [ "$(id -u)" != 0 ]; then
    echo "compare.sh: installing etcd-server needs root; run: sudo apt-get install -y etcd-server" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }
fi

if [ "${RAFTKV_COMPARE_SKIP_BUILD:-}" != "1" ]; then
  dotnet build -c Release src/RaftKv.Server -v quiet -nologo >/dev/null
  dotnet build -c Release src/RaftKv.Cli -v quiet -nologo >/dev/null
fi
cli=(dotnet exec src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll)

work="$(mktemp -d)"
export RAFTKV_CLUSTER_DIR="$work/raftkv"
raftkv_port="${RAFTKV_CLUSTER_PORT:-8081}"
raftkv_endpoints="http://127.0.0.1:$raftkv_port,http://127.0.0.1:$((raftkv_port + 1)),http://127.0.0.1:$((raftkv_port + 2))"
raftkv_protocol="HTTP/1.1, a connection per client"
if [ "${RAFTKV_COMPARE_HTTP2:-1}" = "1" ]; then
  # scripts/cluster.sh gives each node an HTTP/2 listener 100 ports above its client port; --target etcd ignores this.
  export RAFTKV_HTTP2=1
  h2_port=$((raftkv_port + 100))
  raftkv_endpoints="http://127.0.0.1:$h2_port,http://127.0.0.1:$((h2_port + 1)),http://127.0.0.1:$((h2_port + 2))"
  raftkv_protocol="HTTP/2, clients sharing a connection per node"
fi
etcd_port="${RAFTKV_COMPARE_ETCD_PORT:-12379}"
etcd_endpoints="http://127.0.0.1:$etcd_port,http://127.0.0.1:$((etcd_port + 1)),http://127.0.0.1:$((etcd_port + 2))"
etcd_pids=()

stop_all() {
  for pid in "${etcd_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${etcd_pids[@]}"; do
    # A member that leads hands leadership over before it stops: give it 10 s.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  scripts/cluster.sh stop >/dev/null 2>&1 || true
  if [ "${RAFTKV_COMPARE_KEEP:-}" = "1" ]; then echo "== kept data and logs in $work"; else rm -rf "$work"; fi
}
trap stop_all EXIT

for port in "$raftkv_port" $((raftkv_port + 1)) $((raftkv_port + 2)) $((raftkv_port + 100)) $((raftkv_port + 101)) $((raftkv_port + 102)) "$etcd_port" $((etcd_port + 1)) $((etcd_port + 2)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "compare.sh: port $port is taken; set RAFTKV_CLUSTER_PORT or RAFTKV_COMPARE_ETCD_PORT" >&2
    exit 1
  fi
done

RAFTKV_CLUSTER_SKIP_BUILD=1 scripts/cluster.sh start

initial=""
for i in 1 2 3; do initial="${initial:+$initial,}e$i=http://127.0.0.1:$((etcd_port + 100 + i - 1))"; done
mkdir -p "$work/etcd"
for i in 1 2 3; do
  client="http://127.0.0.1:$((etcd_port + i - 1))"
  peer="http://127.0.0.1:$((etcd_port + 100 + i - 1))"
  etcd --name "e$i" --data-dir "$work/etcd/e$i" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token raftkv-compare \
    --auto-compaction-mode periodic --auto-compaction-retention 1m --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
    --logger zap --log-outputs stderr >"$work/etcd/e$i.log" 2>&1 &
  etcd_pids+=($!)
  disown "$!"
done
for i in 1 2 3; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$((etcd_port + i - 1))/health" 2>/dev/null | grep -q '"health":"true"' && break
    sleep 0.1
  done
done
echo "started e1..e3: clients on http://127.0.0.1:$etcd_port-$((etcd_port + 2)), logs in $work/etcd/"

# Milliseconds of CPU (user + system) the given processes have used so far.
cpu_ms() {
  local ticks=0 pid
  for pid in "$@"; do ticks=$((ticks + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}'))); done
  echo $((ticks * 1000 / $(getconf CLK_TCK)))
}
raftkv_pids() { cat "$RAFTKV_CLUSTER_DIR"/n*.pid; }

echo "== sitting: $(date -u '+%Y-%m-%d %H:%M UTC'), code of $commit, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== RaftKv: 3 nodes, fsync on ($raftkv_endpoints, $raftkv_protocol); $(etcd --version | head -n 1), 3 members, fsync on ($etcd_endpoints)"
echo "== $pairs pairs of ${seconds} s runs per cell, $keys keys, reads linearizable; cells: $cells"

# One benchmark run against one system; prints its JSON report and a line for the table: system, pair, ops/s, p50, p99,
# CPU us/op, errors.
results="$work/results.tsv"
run() {
  local system=$1 cell=$2 pair=$3 clients=$4 size=$5 ratio=$6 endpoints pids before after report
  if [ "$system" = raftkv ]; then endpoints=$raftkv_endpoints; pids=$(raftkv_pids); else endpoints=$etcd_endpoints; pids="${etcd_pids[*]}"; fi
  # shellcheck disable=SC2086
  before=$(cpu_ms $pids)
  # The report, then bash's `times`: its children's (raft-cli's) user and system time, the load generator's CPU.
  report=$( ("${cli[@]}" --endpoints "$endpoints" benchmark --target "$system" --duration "$seconds" --clients "$clients" \
    --keys "$keys" --value-size "$size" --read-ratio "$ratio" --output json || exit; times) )
  # shellcheck disable=SC2086
  after=$(cpu_ms $pids)
  REPORT="$report" python3 - "$system" "$cell" "$pair" $((after - before)) "$results" <<'EOF'
import json, os, re, sys
text = os.environ["REPORT"]
end = text.rindex("}") + 1
r = json.loads(text[:end])
def secs(t):
    m, s = re.match(r"(\d+)m([\d.]+)s", t).groups()
    return int(m) * 60 + float(s)
child = [line for line in text[end:].split("\n") if line.strip()][-1].split()
client_ms = 1000 * (secs(child[0]) + secs(child[1]))
system, cell, pair, cpu, results = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
operations = max(r["operations"], 1)
ops, p50, p99, per_op, client_per_op = r["operationsPerSecond"], r["p50Ms"], r["p99Ms"], 1000 * cpu / operations, 1000 * client_ms / operations
print(text[:end])
with open(results, "a") as f:
    print("\t".join([cell, system, pair, f"{ops:.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{per_op:.0f}", f"{client_per_op:.0f}", str(r["errors"])]), file=f)
print(f"{system}: {ops:.0f} ops/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, server cpu {cpu} ms for {r['operations']} operations = {per_op:.0f} us/op, "
      f"client (raft-cli) cpu {client_ms:.0f} ms = {client_per_op:.0f} us/op, {r['errors']} errors")
EOF
}

fill() {
  local size=$1
  for system in raftkv etcd; do
    echo "== fill $system: every one of $keys keys once, $size B values, 64 clients"
    endpoints=$raftkv_endpoints
    [ "$system" = etcd ] && endpoints=$etcd_endpoints
    "${cli[@]}" --endpoints "$endpoints" benchmark --target "$system" --fill --clients 64 --keys "$keys" --value-size "$size" --output json
  done
}

filled=""
IFS=';' read -r -a cell_list <<<"$cells"
for cell in "${cell_list[@]}"; do
  read -r mix clients size <<<"$cell"
  case "$mix" in
    writes) ratio=0 ;;
    reads90) ratio=0.9 ;;
    *) echo "compare.sh: cell '$cell': the mix is writes or reads90" >&2; exit 2 ;;
  esac
  if [ "$filled" != "$size" ]; then
    fill "$size"
    if [ -z "$filled" ]; then
      for system in raftkv etcd; do
        echo "== warm-up $system: $warmup s, 64 clients, half reads, not counted (JIT, tiered compilation, connections)"
        endpoints=$raftkv_endpoints
        [ "$system" = etcd ] && endpoints=$etcd_endpoints
        "${cli[@]}" --endpoints "$endpoints" benchmark --target "$system" --duration "$warmup" --clients 64 --keys "$keys" \
          --value-size "$size" --read-ratio 0.5 --output json >/dev/null
      done
    fi
    filled=$size
  fi
  for pair in $(seq 1 "$pairs"); do
    for system in raftkv etcd; do
      echo "== $mix, $clients clients, $size B: $system, pair $pair"
      run "$system" "$mix $clients $size" "$pair" "$clients" "$size" "$ratio"
    done
  done
done

echo
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), code of $commit, load average $(cut -d' ' -f1-3 /proc/loadavg); raw output: $out"
python3 - "$results" "$pairs" "$seconds" <<'EOF'
import statistics, sys
from collections import OrderedDict
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
cells = OrderedDict()
for cell, system, pair, ops, p50, p99, cpu, client, errors in rows:
    cells.setdefault(cell, {}).setdefault(system, []).append((float(ops), float(p50), float(p99), float(cpu), float(client), int(errors)))
def med(runs, i): return statistics.median(r[i] for r in runs)
def num(x): return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"
print(f"Medians of {sys.argv[2]} pairs of {sys.argv[3]} s runs; x = RaftKv / etcd (ops/s: above 1 is RaftKv ahead; p50, p99, CPU: below 1 is).")
print()
print("| load | clients | value | ops/s RaftKv | ops/s etcd | x | p50 ms RaftKv | etcd | x | p99 ms RaftKv | etcd | x | CPU us/op RaftKv | etcd | x | client CPU us/op RaftKv | etcd | x | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for cell, systems in cells.items():
    mix, clients, size = cell.split()
    r, e = systems.get("raftkv", []), systems.get("etcd", [])
    if not r or not e:
        continue
    line = [ "writes" if mix == "writes" else "90 % reads", clients, f"{int(size):,} B" ]
    for i in range(5):
        a, b = med(r, i), med(e, i)
        line += [num(a), num(b), f"{a / b:.2f}" if b else "-"]
    line.append(f"{sum(x[5] for x in r)} / {sum(x[5] for x in e)}")
    print("| " + " | ".join(line) + " |")
EOF
