// Run tracking (issue 12): what recording a run costs, and how fast the
// workspace answers.
//   BM_record_10k_steps/computed  100 chains × 100 steps, cache off (every
//                                 step computes), alternately recorded and
//                                 not, in one loop: counters off_ms, on_ms,
//                                 ratio (on / off)
//   BM_record_10k_steps/cached    the same pipeline, every step a cache hit
//   BM_record_10k_steps/computed_write_behind
//                                 tracking_options::write_behind: 10 runs
//                                 not recorded, then 10 recorded and
//                                 ps::wait_for_records(), in one loop (the
//                                 records' last writes, made after their
//                                 runs returned, are counted in the
//                                 recorded runs' time); on_return_ms: a
//                                 recorded run's time until it returned
//   BM_runs_query/N               `runs` (20 newest, the default) and
//                                 `runs --limit 0 --json` on a workspace of
//                                 N recorded runs of that pipeline
#include <benchmark/benchmark.h>

#include <penstock/detail/runtime_api.hpp>
#include <penstock/pipeline.hpp>

#include <chrono>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cache_bench_support.hpp"
#include "dispatch_counters.hpp"
#include "workspace_commands.hpp"
#include "workspace_store.hpp"

namespace ps = penstock;
namespace r1 = penstock::detail::r1;

namespace {

constexpr std::size_t chains = 100;
constexpr std::size_t length = 100;
constexpr std::size_t steps = chains * length;

const penstock_bench::chains_graph& graph() {
  static const penstock_bench::chains_graph instance{chains, length};
  return instance;
}

// Made once, as ps::pipeline::run does (its pipeline keeps its schedule).
const r1::schedule* plan() {
  static const auto instance = r1::make_schedule(graph().description());
  return instance.get();
}

ps::run_options options_for(const std::filesystem::path& directory, bool cache, bool record,
                            bool write_behind = false) {
  ps::run_options options{.threads = penstock_bench::threads,
                          .progress = ps::progress_mode::none,
                          .params = {{"head", "0"}},
                          .stop = nullptr,
                          .cache = {.enabled = cache, .directory = directory.string(), .rerun = {}},
                          .tracking = {.enabled = record, .write_behind = write_behind}};
  return options;
}

double run_ms(const ps::run_options& options, bool& ok) {
  const auto start = std::chrono::steady_clock::now();
  const auto outcome = r1::execute(graph().description(), options, plan());
  const auto took = std::chrono::steady_clock::now() - start;
  ok = ok && outcome.report.ok() && outcome.report.warnings.empty();
  return std::chrono::duration<double, std::milli>(took).count();
}

void record(benchmark::State& state, bool cache) {
  const penstock_bench::scratch_directory directory("tracking");
  const auto off = options_for(directory.path(), cache, false);
  const auto on = options_for(directory.path(), cache, true);
  bool ok = true;
  (void)run_ms(on, ok);  // the cache populated, the workspace made
  double off_total = 0;
  double on_total = 0;
  for (auto _ : state) {
    off_total += run_ms(off, ok);
    on_total += run_ms(on, ok);
  }
  if (!ok) state.SkipWithError("a run failed or warned");
  const auto n = static_cast<double>(state.iterations());
  state.counters["off_ms"] = off_total / n;
  state.counters["on_ms"] = on_total / n;
  state.counters["ratio"] = on_total / off_total;
  penstock_bench::report_dispatch(state, 2 * steps);
}

void record_computed(benchmark::State& state) { record(state, false); }

void record_write_behind(benchmark::State& state) {
  constexpr int block = 10;
  const penstock_bench::scratch_directory directory("tracking");
  const auto off = options_for(directory.path(), false, false);
  const auto on = options_for(directory.path(), false, true, true);
  bool ok = true;
  (void)run_ms(on, ok);
  ps::wait_for_records();
  double off_total = 0;
  double on_total = 0;
  double returned_total = 0;
  for (auto _ : state) {
    for (int i = 0; i < block; ++i) off_total += run_ms(off, ok);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < block; ++i) returned_total += run_ms(on, ok);
    ps::wait_for_records();
    on_total += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  if (!ok) state.SkipWithError("a run failed or warned");
  const auto n = static_cast<double>(state.iterations()) * block;
  state.counters["off_ms"] = off_total / n;
  state.counters["on_ms"] = on_total / n;
  state.counters["on_return_ms"] = returned_total / n;
  state.counters["ratio"] = on_total / off_total;
  penstock_bench::report_dispatch(state, 2 * block * steps);
}
void record_cached(benchmark::State& state) { record(state, true); }

// A workspace of `runs` recorded runs: one real run of the 10,000-step
// pipeline, and its run row and parameters written again under new ids (the
// copies without step runs: `runs` reads the runs table only, and 10,000
// copies of 10,000 step runs would be 10^8 rows).
struct workspace {
  penstock_bench::scratch_directory directory{"workspace"};
  explicit workspace(std::size_t runs) {
    const auto options = options_for(directory.path(), true, true);
    const auto outcome = r1::execute(graph().description(), options);
    auto store = r1::workspace_store::open_for_writing(r1::workspace_file(directory.path()));
    const auto model = store->find_run(outcome.report.run_id);
    const auto params = store->params(model->id);
    for (std::size_t i = 1; i < runs; ++i) {
      r1::run_row row = *model;
      row.id = model->id + "-" + std::to_string(i);
      row.started += std::chrono::seconds(i);
      row.status = "running";
      r1::run_row end = row;
      end.status = i % 7 == 0 ? "failed" : "succeeded";
      end.ended = row.started + std::chrono::milliseconds(20);
      store->write({.run = row.id, .begin = &row, .params = params, .end = &end});
    }
  }
};

void runs_query(benchmark::State& state) {
  static workspace w(static_cast<std::size_t>(state.range(0)));
  const auto ask = [&](std::vector<std::string> args) {
    CLI::App app("bench");
    const auto commands = r1::add_workspace_commands(app);
    std::vector<const char*> argv{"bench"};
    for (const auto& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
    std::ostringstream out;
    std::ostringstream err;
    const auto start = std::chrono::steady_clock::now();
    const int code = r1::run_workspace_command(commands, r1::workspace_file(w.directory.path()), out, err).value_or(-1);
    const auto took = std::chrono::steady_clock::now() - start;
    if (code != 0) state.SkipWithError(err.str().c_str());
    return std::chrono::duration<double, std::milli>(took).count();
  };
  double newest = 0;
  double all = 0;
  for (auto _ : state) {
    newest += ask({"runs"});
    all += ask({"runs", "--limit", "0", "--json"});
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["runs_ms"] = newest / n;
  state.counters["runs_all_json_ms"] = all / n;
}

}  // namespace

BENCHMARK(record_computed)->Name("BM_record_10k_steps/computed")->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(record_write_behind)
    ->Name("BM_record_10k_steps/computed_write_behind")
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2);
BENCHMARK(record_cached)->Name("BM_record_10k_steps/cached")->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(runs_query)->Name("BM_runs_query")->Arg(10'000)->Unit(benchmark::kMillisecond)->MinTime(2);
