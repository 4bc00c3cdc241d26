#!/usr/bin/env bash
# A/B: two builds of RaftKv, each on a fresh 3-node cluster, taking turns in one sitting, so that a change is measured
# against the code before it on the same machine in the same minutes.
#   scripts/ab.sh BEFORE_TREE AFTER_TREE [ROUNDS] [RUNS]
# Each tree is a checkout of this repository, built in Release (dotnet build -c Release). Every round starts the
# before tree's cluster (its own scripts/cluster.sh and server), fills it, runs RUNS benchmark runs with that tree's
# own raft-cli, stops it, then does the same with the after tree. Each run prints ops/s, p50, p99 and the servers' CPU
# per operation (user + system of the three server processes, from /proc, divided by operations), and the client's CPU
# per operation (raft-cli's own user + system), since on this machine the load generator shares the cores.
#   RAFTKV_AB_LOAD     raft-cli benchmark options (default: "--clients 64"); --read-ratio 0.9 for the read mix
#   RAFTKV_AB_KEYS     keys, filled once per cluster (default 100000); RAFTKV_AB_SECONDS per run (default 10)
#   RAFTKV_AB_HTTP2    1 (default): clients share an HTTP/2 connection per node, as compare.sh's do; 0: HTTP/1.1
#   RAFTKV_AB_ENV_BEFORE, RAFTKV_AB_ENV_AFTER   environment settings for that side's servers, e.g.
#                      "DOTNET_GCDynamicAdaptationMode=0" (the same tree may then be given twice, to compare settings)
# After each run it also prints the servers' resident memory (VmRSS, MiB).
# Raw lines go to stdout; the summary at the end gives each side's runs. Nothing here is a test: CI does not run it.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
before_tree=$(cd "$1" && pwd)
after_tree=$(cd "$2" && pwd)
rounds=${3:-3}
runs=${4:-2}
load=${RAFTKV_AB_LOAD:---clients 64}
keys=${RAFTKV_AB_KEYS:-100000}
seconds=${RAFTKV_AB_SECONDS:-10}
http2=${RAFTKV_AB_HTTP2:-1}
env_before=${RAFTKV_AB_ENV_BEFORE:-}
env_after=${RAFTKV_AB_ENV_AFTER:-}
port=${RAFTKV_CLUSTER_PORT:-8081}
for tree in "$before_tree" "$after_tree"; do
  for built in src/RaftKv.Server/bin/Release/net10.0/RaftKv.Server.dll src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll; do
    [ -e "$tree/$built" ] || { echo "ab.sh: $tree/$built is missing: build the tree first (dotnet build -c Release)" >&2; exit 2; }
  done
done

work=$(mktemp -d)
running=""
stop() {
  if [ -n "$running" ]; then
    RAFTKV_CLUSTER_DIR="$work/cluster" "$running/scripts/cluster.sh" stop >/dev/null 2>&1 || true
    running=""
  fi
}
cleanup() { stop; rm -rf "$work"; }
trap cleanup EXIT

endpoints="http://127.0.0.1:$port,http://127.0.0.1:$((port + 1)),http://127.0.0.1:$((port + 2))"
h2=()
if [ "$http2" = "1" ]; then
  endpoints="http://127.0.0.1:$((port + 100)),http://127.0.0.1:$((port + 101)),http://127.0.0.1:$((port + 102))"
  h2=(--http2)
fi

# Milliseconds of CPU (user + system) the given processes have used so far.
cpu_ms() {
  local ticks=0 pid
  for pid in "$@"; do ticks=$((ticks + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}'))); done
  echo $((ticks * 1000 / $(getconf CLK_TCK)))
}

echo "== sitting: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== before: $before_tree ($(git -C "$before_tree" rev-parse --short HEAD)$(git -C "$before_tree" diff --quiet HEAD || echo ' + changes'))${env_before:+, env $env_before}"
echo "== after:  $after_tree ($(git -C "$after_tree" rev-parse --short HEAD)$(git -C "$after_tree" diff --quiet HEAD || echo ' + changes'))${env_after:+, env $env_after}"
echo "== $rounds rounds of $runs runs of $seconds s per side, $keys keys, load: $load, http2=$http2"
summary="$work/summary.tsv"
for round in $(seq 1 "$rounds"); do
  for side in before after; do
    tree=$before_tree
    side_env=$env_before
    [ "$side" = after ] && tree=$after_tree && side_env=$env_after
    cli=(dotnet exec "$tree/src/RaftKv.Cli/bin/Release/net10.0/raft-cli.dll")
    rm -rf "$work/cluster"
    # shellcheck disable=SC2086
    env $side_env RAFTKV_HTTP2=$http2 RAFTKV_CLUSTER_SKIP_BUILD=1 RAFTKV_CLUSTER_DIR="$work/cluster" "$tree/scripts/cluster.sh" start >/dev/null
    running=$tree
    "${cli[@]}" --endpoints "$endpoints" "${h2[@]}" benchmark --fill --clients 64 --keys "$keys" --output json >/dev/null
    pids=$(cat "$work/cluster"/n*.pid)
    for run in $(seq 1 "$runs"); do
      # shellcheck disable=SC2086
      server_before=$(cpu_ms $pids)
      # shellcheck disable=SC2086
      report=$( ( "${cli[@]}" --endpoints "$endpoints" "${h2[@]}" benchmark --duration "$seconds" --keys "$keys" $load --output json || exit; times ) )
      # shellcheck disable=SC2086
      server_after=$(cpu_ms $pids)
      # shellcheck disable=SC2086
      rss=$(for pid in $pids; do awk '/^VmRSS/ {printf "%d ", $2 / 1024}' "/proc/$pid/status"; done)
      REPORT="$report" RSS="$rss" python3 - "$side" "$round" "$run" $((server_after - server_before)) "$summary" <<'EOF'
import json, os, re, sys
text = os.environ["REPORT"]
side, rnd, run, server_ms, summary = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
json_text, times = text[: text.rindex("}") + 1], text[text.rindex("}") + 1 :].split("\n")
r = json.loads(json_text)
# bash's `times`: the shell's own user/system, then its children's (raft-cli's): "0m1.234s 0m0.567s"
def seconds(t):
    m, s = re.match(r"(\d+)m([\d.]+)s", t).groups()
    return int(m) * 60 + float(s)
child = [line for line in times if line.strip()][-1].split()
client_ms = 1000 * (seconds(child[0]) + seconds(child[1]))
ops = max(r["operations"], 1)
line = f"{side} round {rnd} run {run}: {r['operationsPerSecond']:,.0f} ops/s, p50 {r['p50Ms']:.2f} ms, p99 {r['p99Ms']:.2f} ms, " \
       f"server {1000 * server_ms / ops:.0f} us/op, client {1000 * client_ms / ops:.0f} us/op, errors {r['errors']}, " \
       f"rss MiB {os.environ['RSS'].strip().replace(' ', '/')}"
print(line)
with open(summary, "a") as f:
    print(line, file=f)
EOF
    done
    stop
  done
done
echo
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
grep '^before' "$summary"
grep '^after' "$summary"
