#!/bin/sh
# Builds the `bench` preset and runs every benchmark, each in a process of its
# own, writing one JSON report per benchmark (and the console output) to
# build/bench/results/<timestamp>/.
#
# Why one process per benchmark: with oneTBB 2021.8, every penstock run
# creates a task_arena that is never freed, and those arenas keep claiming the
# process's TBB worker threads. Run in one process, every benchmark after the
# first penstock one is measured in a polluted process: later penstock runs
# get slower and slower, and the flow graph's 2-thread arena gets no worker at
# all (it silently runs on one thread). RESULTS.md has the measurements.
#
#   bench/run.sh                      # what RESULTS.md reports
#   bench/run.sh --single-process     # all benchmarks in one process, one JSON
#   bench/run.sh --benchmark_filter=BM_chain/   # extra arguments go to the binary
#   bench/run.sh --cache [--single-process] [...]   # the step-cache benchmarks
#                                     # (penstock_cache_bench) instead; see RESULTS.md
#   bench/run.sh --tracking [...]    # run tracking's cost (penstock_tracking_bench, issue 12)
#   bench/run.sh --commands [...]    # command steps against posix_spawn and ninja (issue 13),
#                                     # in one process, the repetitions of penstock and its
#                                     # peer interleaved (8 of each): each pair is measured
#                                     # in the same minutes of this noisy machine
#   bench/run.sh --gpu [--single-process] [...]     # the GPU benchmarks
#                                     # (penstock_gpu_bench, issue 4) instead. Skipped,
#                                     # exit status 0, when the build has no CUDA
#                                     # (no nvcc: the target does not exist) or the
#                                     # machine has no CUDA device.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
single=0
target=penstock_bench
while [ $# -gt 0 ]; do
  case "$1" in
    --single-process) single=1 ;;
    --cache) target=penstock_cache_bench ;;
    --tracking) target=penstock_tracking_bench ;;
    --commands)
      target=penstock_command_bench
      single=1
      ;;
    --gpu) target=penstock_gpu_bench ;;
    *) break ;;
  esac
  shift
done
cmake --preset bench
binary=build/bench/bench/$target
if [ "$target" = penstock_gpu_bench ]; then
  # The target exists only when the configure step found CUDA (PENSTOCK_WITH_CUDA).
  if ! grep -q '^build bench/penstock_gpu_bench:' build/bench/build.ninja; then
    echo "bench/run.sh --gpu: skipped: this build has no CUDA (PENSTOCK_WITH_CUDA is OFF; the configure output says why)"
    exit 0
  fi
  cmake --build --preset bench --target "$target"
  if ! "$binary" --device; then
    echo "bench/run.sh --gpu: skipped: no CUDA device to run the GPU benchmarks on"
    exit 0
  fi
else
  cmake --build --preset bench --target "$target"
fi
results=build/bench/results/$(date +%Y%m%dT%H%M%S)
mkdir -p "$results"
common="--benchmark_repetitions=5 --benchmark_report_aggregates_only=true --benchmark_out_format=json"
if [ "$target" = penstock_command_bench ]; then
  common="--benchmark_repetitions=8 --benchmark_enable_random_interleaving=true --benchmark_min_time=0.2
          --benchmark_report_aggregates_only=true --benchmark_out_format=json"
fi

if [ "$single" = 1 ]; then
  # shellcheck disable=SC2086
  "$binary" $common --benchmark_out="$results/$target.json" "$@" | tee "$results/console.txt"
else
  # --benchmark_list_tests honours a --benchmark_filter among "$@".
  for name in $("$binary" --benchmark_list_tests "$@"); do
    file=$(printf '%s' "$name" | tr '/' '.')
    # shellcheck disable=SC2086
    "$binary" $common "$@" --benchmark_filter="^${name}\$" --benchmark_out="$results/$file.json" |
      tee -a "$results/console.txt"
  done
fi
echo "JSON reports: $results/"
