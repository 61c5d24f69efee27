// Step cache, per-step overhead of a miss (issue 3, workload 4): a chain of
// 1,000 empty int steps (its head reads a parameter) run through r1::execute
// with the cache off, and with it on where every step is a real miss: each
// iteration passes a head value never used before, 2,000 apart from every
// other, so all 1,000 keys are new and every step writes a new blob.
//   BM_cache_miss_overhead/cache_off
//   BM_cache_miss_overhead/cache_on        cache directory under the temporary directory (disk)
//   BM_cache_miss_overhead/cache_on_tmpfs  the same under /dev/shm: what is left without disk syncs (diagnostic)
#include <benchmark/benchmark.h>

#include <penstock/detail/runtime_api.hpp>

#include <cstddef>
#include <filesystem>
#include <string>

#include "cache_bench_support.hpp"
#include "dispatch_counters.hpp"

namespace ps = penstock;
namespace r1 = penstock::detail::r1;

namespace {

constexpr std::size_t steps = 1'000;

const penstock_bench::chains_graph& chain() {
  static const penstock_bench::chains_graph instance{1, steps};
  return instance;
}

void cache_off(benchmark::State& state) {
  const ps::run_options options{.threads = penstock_bench::threads,
                                .progress = ps::progress_mode::none,
                                .params = {{"head", "1"}},
                                .tracking = {.enabled = false}};
  for (auto _ : state) {
    const auto outcome = r1::execute(chain().description(), options);
    if (!outcome.report.ok()) {
      state.SkipWithError("the chain failed");
      break;
    }
  }
  penstock_bench::report_dispatch(state, steps);
}

void cache_on(benchmark::State& state, const std::filesystem::path& parent) {
  const penstock_bench::scratch_directory directory("cache-miss", parent);
  ps::run_options options{.threads = penstock_bench::threads,
                          .progress = ps::progress_mode::none,
                          .params = {{"head", "0"}},
                          .stop = nullptr,
                          .cache = {.enabled = true, .directory = directory.path().string(), .rerun = {}},
                          .tracking = {.enabled = false}};
  int head = 0;
  for (auto _ : state) {
    head += 2'000;
    options.params[0].second = std::to_string(head);
    const auto outcome = r1::execute(chain().description(), options);
    bool stored = outcome.report.ok() && outcome.report.cache_hits() == 0 && outcome.report.cache_note.empty();
    for (const auto& s : outcome.report.steps) stored = stored && s.cache_note.empty() && s.key.has_value();
    if (!stored) {
      state.SkipWithError("a run with the cache on did not miss and store every step");
      break;
    }
  }
  penstock_bench::report_dispatch(state, steps);
}

void cache_on_disk(benchmark::State& state) { cache_on(state, {}); }

void cache_on_tmpfs(benchmark::State& state) {
  if (!std::filesystem::is_directory("/dev/shm")) {
    state.SkipWithError("no /dev/shm");
    return;
  }
  cache_on(state, "/dev/shm");
}

}  // namespace

BENCHMARK(cache_off)->Name("BM_cache_miss_overhead/cache_off")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(cache_on_disk)->Name("BM_cache_miss_overhead/cache_on")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(cache_on_tmpfs)->Name("BM_cache_miss_overhead/cache_on_tmpfs")->UseRealTime()->Unit(benchmark::kMicrosecond);
