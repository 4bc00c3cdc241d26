#!/usr/bin/env bash
# A long soak of the simulator: N seeds (CI's options for each, SimulationOptions.ForSeed) split over parallel processes of
# the simulation runner. Prints a progress line every RAFTKV_SOAK_PROGRESS_SECONDS (default 30) and, for every failing
# seed, its first line and the command that replays it; ends with seeds run, duration, seeds per second and failures.
# Usage: scripts/soak-seeds.sh N        (from RAFTKV_SIM_FIRST_SEED, default 1000000, so that it does not repeat CI's seeds)
#   RAFTKV_SOAK_PROCESSES   parallel processes (default: the number of cores)
#   RAFTKV_SOAK_DIR         where each process writes its log (default /tmp/raftkv-soak)
#   RAFTKV_BUILD_LOCK       build under `flock` on this file with one MSBuild node (a machine shared with others)
#   RAFTKV_SOAK_BUILD_ARGS  more build arguments, e.g. -p:MutantSymbol=MUTANT_X to see a soak catch a mutant
#   RAFTKV_SIM_SNAPSHOT_KEEP_ENTRIES, RAFTKV_SIM_SNAPSHOT_THRESHOLD_ENTRIES
#                           fix every seed's snapshot settings instead of the seed's draw (keep 0: each snapshot compacts
#                           every entry it covers), e.g. RAFTKV_SIM_SNAPSHOT_KEEP_ENTRIES=0 RAFTKV_SIM_SNAPSHOT_THRESHOLD_ENTRIES=5
set -euo pipefail
cd "$(dirname "$0")/.."

count="${1:?usage: scripts/soak-seeds.sh N}"
first="${RAFTKV_SIM_FIRST_SEED:-1000000}"
processes="${RAFTKV_SOAK_PROCESSES:-$(nproc)}"
out="${RAFTKV_SOAK_DIR:-/tmp/raftkv-soak}"
every="${RAFTKV_SOAK_PROGRESS_SECONDS:-30}"

read -r -a extra <<< "${RAFTKV_SOAK_BUILD_ARGS:-}"
build=(nice -n 19 dotnet build -c Release tests/RaftKv.Simulation.Runner --artifacts-path "$out/build" -v quiet -nologo "${extra[@]}")
if [ -n "${RAFTKV_BUILD_LOCK:-}" ]; then
  build=(flock "$RAFTKV_BUILD_LOCK" "${build[@]}" -m:1)
fi
mkdir -p "$out"
rm -f "$out"/soak-*.log
"${build[@]}" > "$out/build.log" 2>&1 || { echo "build failed: see $out/build.log" >&2; exit 2; }
runner="$out/build/bin/RaftKv.Simulation.Runner/release/RaftKv.Simulation.Runner.dll"
runner_args=()
[ -z "${RAFTKV_SIM_SNAPSHOT_KEEP_ENTRIES:-}" ] || runner_args+=(--snapshot-keep-entries "$RAFTKV_SIM_SNAPSHOT_KEEP_ENTRIES")
[ -z "${RAFTKV_SIM_SNAPSHOT_THRESHOLD_ENTRIES:-}" ] || runner_args+=(--snapshot-threshold-entries "$RAFTKV_SIM_SNAPSHOT_THRESHOLD_ENTRIES")

# Process p runs a contiguous slice of the seeds, without a time bound; it prints a FAIL line (and its replay command) for
# each failing seed and a summary line at the end.
per=$(( (count + processes - 1) / processes ))
pids=()
start=$(date +%s)
for ((p = 0; p < processes; p++)); do
  from=$(( first + p * per ))
  n=$(( count - p * per < per ? count - p * per : per ))
  [ "$n" -gt 0 ] || break
  nice -n 19 dotnet "$runner" --first "$from" --count "$n" --seconds 100000000 --progress 100 "${runner_args[@]}" > "$out/soak-$p.log" 2>&1 &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM

# Progress: each process prints "progress k" after every 100 seeds it ran; the sum of the latest is the seeds done.
done_so_far() {
  local total=0 p last
  for ((p = 0; p < ${#pids[@]}; p++)); do
    last=$(grep -h '^progress ' "$out/soak-$p.log" 2>/dev/null | tail -n1 | awk '{print $2}')
    total=$((total + ${last:-0}))
  done
  echo "$total"
}
shown=()  # failures already printed, per process
while :; do
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=$((running + 1)); done
  failures=0
  for ((p = 0; p < ${#pids[@]}; p++)); do
    n=$(grep -c '^FAIL seed' "$out/soak-$p.log" 2>/dev/null || true)
    if [ "$n" -gt "${shown[$p]:-0}" ]; then
      # Each FAIL line is followed by its replay line.
      grep -A1 '^FAIL seed' "$out/soak-$p.log" | grep -v '^--$' | tail -n +$(( ${shown[$p]:-0} * 2 + 1 ))
      shown[$p]=$n
    fi
    failures=$((failures + n))
  done
  [ "$running" -gt 0 ] || break
  finished=$(done_so_far)
  secs=$(( $(date +%s) - start ))
  printf '%s  %d of %d seeds in %d s (%s seeds/s), %d failed so far\n' "$(date +%T)" "$finished" "$count" "$secs" \
    "$(awk -v s="$finished" -v e="$secs" 'BEGIN {printf "%.1f", s / (e > 0 ? e : 1)}')" "$failures"
  sleep "$every"
done

status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
elapsed=$(( $(date +%s) - start ))
seeds=$(grep -h ' seeds from ' "$out"/soak-*.log | awk '{s += $1} END {print s + 0}')
failed=$(cat "$out"/soak-*.log | grep -c '^FAIL seed' || true)
printf '%d seeds from %d in %d s (%s seeds/s) on %d processes, %d failed\n' "$seeds" "$first" "$elapsed" \
  "$(awk -v s="$seeds" -v e="$elapsed" 'BEGIN {printf "%.1f", s / (e > 0 ? e : 1)}')" "${#pids[@]}" "$failed"
exit $status
