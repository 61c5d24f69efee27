// What every dispatch benchmark reports besides its time: the steps one
// iteration runs, items (steps) per second, and the wall-clock nanoseconds
// per step, so shapes of different sizes compare on one scale.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>

namespace penstock_bench {

// Both sides run at this concurrency: run_options::threads for penstock, a
// tbb::task_arena of this many threads for the flow graph.
inline constexpr int threads = 2;

// Call after the timing loop. ns_per_step is iteration time / steps: the
// counter is "steps × 1e-9 per iteration" as a rate, inverted, so Google
// Benchmark divides the measured (real, see UseRealTime) seconds by
// steps × 1e-9 × iterations.
inline void report_dispatch(benchmark::State& state, std::size_t steps) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(steps));
  state.counters["steps"] = static_cast<double>(steps);
  state.counters["ns_per_step"] = benchmark::Counter(
      static_cast<double>(steps) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

}  // namespace penstock_bench
