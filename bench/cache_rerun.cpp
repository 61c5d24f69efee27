// Step cache, reruns (issue 3, workloads 1 and 2): a 10,000-step pipeline
// (100 independent chains × 100 steps, each step passing an int; see
// chains_graph) run through r1::execute with the cache on, against ninja on
// the equivalent 10,000-edge build.ninja (100 chains of 100 `cp $in $out`
// edges on real small files; ninja_project), both populated / built once
// before timing.
//   BM_cache_rerun_full/*       everything cached: 10,000 hits / ninja no-op
//   BM_cache_rerun_one_chain/*  one chain's head changed: 100 steps
//                               recomputed and 9,900 hits / 100 edges rebuilt
// penstock runs in this process (no process start); ninja is started with
// posix_spawn for every run, so its figure includes its process start.
#include <benchmark/benchmark.h>

#include <penstock/detail/runtime_api.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <string>

#include "cache_bench_support.hpp"
#include "dispatch_counters.hpp"

namespace ps = penstock;
namespace r1 = penstock::detail::r1;

namespace {

constexpr std::size_t chains = 100;
constexpr std::size_t length = 100;
constexpr std::size_t steps = chains * length;

ps::run_options cached_run(const std::filesystem::path& directory, int head) {
  return {.threads = penstock_bench::threads,
          .progress = ps::progress_mode::none,
          .params = {{"head", std::to_string(head)}},
          .stop = nullptr,
          .cache = {.enabled = true, .directory = directory.string(), .rerun = {}},
          .tracking = {.enabled = false}};
}

std::size_t computed(const ps::run_report& report) {
  std::size_t n = 0;
  for (const auto& s : report.steps) n += s.status == ps::step_status::succeeded && !s.cache_hit ? 1 : 0;
  return n;
}

int output_of(const r1::run_outcome& outcome, std::size_t chain) {
  const void* slot = r1::output_slot(*outcome.state, chain * length + length - 1);
  return slot == nullptr ? -1 : **static_cast<const std::optional<int>*>(slot);
}

// The cache of the 10,000-step pipeline (head = 0), populated once per
// process; checked: the populating run computes every step, the next one
// hits every step and still returns the right outputs.
struct populated_cache {
  penstock_bench::chains_graph graph{chains, length};
  penstock_bench::chains_graph graph_without_outputs{chains, length, false};  // same keys
  penstock_bench::scratch_directory directory{"cache-rerun"};
  std::string error;

  populated_cache() {
    const auto first = r1::execute(graph.description(), cached_run(directory.path(), 0));
    if (!first.report.ok() || computed(first.report) != steps || !first.report.cache_note.empty()) {
      error = "the populating run did not compute every step: " + first.report.summary() + first.report.cache_note;
      return;
    }
    const auto again = r1::execute(graph.description(), cached_run(directory.path(), 0));
    if (!again.report.ok() || again.report.cache_hits() != steps || output_of(again, 0) != int{length} - 1 ||
        output_of(again, 7) != 7 + int{length} - 1) {
      error = "the rerun did not hit every step with the right outputs: " + again.report.summary();
    }
  }
};

populated_cache& cache() {
  static populated_cache instance;
  return instance;
}

void report(benchmark::State& state, std::size_t recomputed) {
  penstock_bench::report_dispatch(state, steps);
  state.counters["recomputed"] = static_cast<double>(recomputed);
}

// --- penstock ---------------------------------------------------------------

void penstock_full(benchmark::State& state, bool with_outputs) {
  auto& c = cache();
  if (!c.error.empty()) {
    state.SkipWithError(c.error.c_str());
    return;
  }
  const ps::graph_description& graph = with_outputs ? c.graph.description() : c.graph_without_outputs.description();
  const ps::run_options options = cached_run(c.directory.path(), 0);
  for (auto _ : state) {
    const auto outcome = r1::execute(graph, options);
    if (outcome.report.cache_hits() != steps) {
      state.SkipWithError("a fully cached rerun did not hit every step");
      break;
    }
  }
  report(state, 0);
}

void penstock_full_rerun(benchmark::State& state) { penstock_full(state, true); }
void penstock_full_rerun_no_outputs(benchmark::State& state) { penstock_full(state, false); }

void penstock_one_chain(benchmark::State& state) {
  auto& c = cache();
  if (!c.error.empty()) {
    state.SkipWithError(c.error.c_str());
    return;
  }
  // A head value never used before in this process, `length` apart from
  // every other: chain 0's 100 steps all miss and write new blobs.
  static int next_head = 1'000'000;
  ps::run_options options = cached_run(c.directory.path(), 0);
  for (auto _ : state) {
    const int head = next_head;
    next_head += 1000;
    options.params[0].second = std::to_string(head);
    const auto outcome = r1::execute(c.graph.description(), options);
    if (outcome.report.cache_hits() != steps - length || computed(outcome.report) != length ||
        output_of(outcome, 0) != head + int{length} - 1) {
      state.SkipWithError("changing chain 0's head did not recompute exactly its 100 steps");
      break;
    }
  }
  report(state, length);
}

// --- ninja ------------------------------------------------------------------

// The ninja project, built once per process and checked to be a no-op then.
struct built_project {
  penstock_bench::ninja_project project{chains, length};
  std::string error;

  built_project() {
    try {
      (void)project.ninja_captured();
      const std::string again = project.ninja_captured();
      if (again.find("no work to do") == std::string::npos) error = "the second ninja run was not a no-op: " + again;
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
};

built_project& project() {
  static built_project instance;
  return instance;
}

void ninja_full_rerun(benchmark::State& state) {
  auto& p = project();
  if (!p.error.empty()) {
    state.SkipWithError(p.error.c_str());
    return;
  }
  for (auto _ : state) {
    if (p.project.ninja() != 0) {
      state.SkipWithError("ninja failed");
      break;
    }
  }
  report(state, 0);
}

void ninja_one_chain(benchmark::State& state) {
  auto& p = project();
  if (!p.error.empty()) {
    state.SkipWithError(p.error.c_str());
    return;
  }
  static int generation = 0;
  for (auto _ : state) {
    // The edit, not timed: chain 0's head file gets new contents.
    state.PauseTiming();
    const std::string text = penstock_bench::concat("chain 0, generation ", std::to_string(++generation), "\n");
    penstock_bench::write_text(p.project.head_input(0), text);
    state.ResumeTiming();
    if (p.project.ninja() != 0) {
      state.SkipWithError("ninja failed");
      break;
    }
    // Not timed either: the edit went all the way down chain 0.
    state.PauseTiming();
    const bool rebuilt = penstock_bench::read_text(p.project.tail_output(0)) == text;
    state.ResumeTiming();
    if (!rebuilt) {
      state.SkipWithError("ninja did not rebuild chain 0 (file times too close?)");
      break;
    }
  }
  report(state, length);
}

}  // namespace

BENCHMARK(penstock_full_rerun)->Name("BM_cache_rerun_full/penstock")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(ninja_full_rerun)->Name("BM_cache_rerun_full/ninja")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(penstock_full_rerun_no_outputs)
    ->Name("BM_cache_rerun_full/penstock_no_outputs")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(penstock_one_chain)->Name("BM_cache_rerun_one_chain/penstock")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(ninja_one_chain)->Name("BM_cache_rerun_one_chain/ninja")->UseRealTime()->Unit(benchmark::kMillisecond);
