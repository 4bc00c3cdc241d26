#!/usr/bin/env bash
# The mutation catalogue: for each mutant (an `#if MUTANT_X` in the source that breaks one rule), build the simulation
# runner with that one symbol into a directory of its own under $RAFTKV_MUTANT_DIR (the normal build is untouched), run
# CI's seeds from RAFTKV_SIM_FIRST_SEED until the first failure, max-seeds, or RAFTKV_MUTANT_SECONDS, and print:
#   caught|missed  <mutant>  <seeds to first failure>  <first failure message>
# Usage: scripts/mutants.sh [max-seeds] [MUTANT_X ...]     (default 2000 seeds, every mutant)
# On a machine shared with others, RAFTKV_BUILD_LOCK=/path/to/lockfile builds under `flock` with one MSBuild node.
set -euo pipefail
cd "$(dirname "$0")/.."

max_seeds="${1:-2000}"
shift || true
first_seed="${RAFTKV_SIM_FIRST_SEED:-0}"
seconds="${RAFTKV_MUTANT_SECONDS:-180}"
out="${RAFTKV_MUTANT_DIR:-/tmp/raftkv-mutants}"

all_mutants=(
  MUTANT_SECOND_VOTE
  MUTANT_OLD_TERM_COMMIT
  MUTANT_COMMIT_BACKWARDS
  MUTANT_TRUNCATE_COMMITTED
  MUTANT_ACK_BEFORE_FSYNC
  MUTANT_APPLY_UNCOMMITTED
  MUTANT_READINDEX_EARLY
  MUTANT_STALE_SNAPSHOT
  MUTANT_LEASE_AFTER_CHECKQUORUM
  MUTANT_TWO_CONF_CHANGES
  MUTANT_CONFIG_ON_COMMIT
)
mutants=("$@")
[ ${#mutants[@]} -gt 0 ] || mutants=("${all_mutants[@]}")

# Every mutant must exist in the source, or the run would "miss" a mutant that was never compiled in.
for m in "${mutants[@]}"; do
  grep -rqs --include='*.cs' "#if !\?$m\$" src tests || { echo "no '#if $m' in src/ or tests/" >&2; exit 2; }
done

build_prefix=()
if [ -n "${RAFTKV_BUILD_LOCK:-}" ]; then
  build_prefix=(flock "$RAFTKV_BUILD_LOCK")
fi
build_args=()
[ -z "${RAFTKV_BUILD_LOCK:-}" ] || build_args=(-m:1)

mkdir -p "$out"
for m in "${mutants[@]}"; do
  dir="$out/$m"
  if ! "${build_prefix[@]}" nice -n 19 dotnet build -c Release tests/RaftKv.Simulation.Runner --artifacts-path "$dir" -p:MutantSymbol="$m" \
       "${build_args[@]}" -v quiet -nologo > "$dir.build.log" 2>&1; then
    printf 'error   %-32s build failed: see %s\n' "$m" "$dir.build.log"
    continue
  fi
  log="$dir.run.log"
  nice -n 19 dotnet "$dir/bin/RaftKv.Simulation.Runner/release/RaftKv.Simulation.Runner.dll" \
    --first "$first_seed" --count "$max_seeds" --seconds "$seconds" --stop-at-first-failure > "$log" 2>&1 || true
  if failure=$(grep -m1 '^FAIL seed' "$log"); then
    seeds=$(sed -E 's/^FAIL seed -?[0-9]+ \(([0-9]+) seeds in\).*/\1/' <<< "$failure")
    message=$(sed -E 's/^FAIL seed [^:]*: //' <<< "$failure" | cut -c1-200)
    printf 'caught  %-32s %6s  %s\n' "$m" "$seeds" "$message"
  else
    summary=$(tail -n1 "$log")
    printf 'missed  %-32s %6s  %s\n' "$m" "-" "$summary"
  fi
done
