// Command steps (ps::command, issue 13), side by side with their peers:
//   BM_command_spawn/penstock     a one-step pipeline whose command is
//                                 `/usr/bin/touch OUTPUT` (a command must
//                                 produce its declared output, which
//                                 /bin/true does not), run uncached
//   BM_command_spawn/posix_spawn  posix_spawn + waitpid of the same
//                                 `/usr/bin/touch PATH`, in this process
//   BM_command_noop/penstock      1,000 cached command steps (`cp SOURCE
//                                 OUTPUT`, each SOURCE a declared source)
//                                 and one that concatenates their outputs
//                                 (`sh -c 'cat "$@" > OUT'`, the pipeline's
//                                 output), all hits, run in this process
//   BM_command_noop/ninja         ninja's no-op on the same 1,001 commands
//                                 (`cp $in $out`, `cat $in > $out`; a
//                                 process started per iteration, as a
//                                 user runs it)
// The 1,000 commands are made through the DSL's detail layer
// (command_instance), which takes names at run time; ps::command takes them
// as template arguments. Runs are not recorded in a workspace
// (tracking.enabled = false: its git query and SQLite writes are the
// record's cost, measured in tracking_overhead.cpp). `bench/run.sh --commands`.
#include <benchmark/benchmark.h>

#include <spawn.h>
#include <sys/wait.h>

#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <penstock/penstock.hpp>

#include "cache_bench_support.hpp"

namespace ps = penstock;
namespace fs = std::filesystem;

namespace {

using penstock_bench::concat;
using penstock_bench::run_program;
using penstock_bench::scratch_directory;
using penstock_bench::write_text;

constexpr std::size_t noop_commands = 1000;

void penstock_spawn(benchmark::State& state) {
  auto touched = ps::command<"touch">("/usr/bin/touch", ps::output_file("touched"));
  const auto pipeline = ps::pipeline<"spawn">(touched);
  ps::run_options options;
  options.threads = 2;
  options.tracking.enabled = false;  // no run record (git, SQLite): the step's own cost
  for (auto _ : state) {
    const auto r = pipeline.run(options);
    if (!r.ok()) {
      state.SkipWithError(r.report().steps.front().error.c_str());
      break;
    }
  }
}

void raw_spawn(benchmark::State& state) {
  scratch_directory dir("spawn");
  const std::string path = (dir.path() / "touched").string();
  std::vector<char*> argv{const_cast<char*>("/usr/bin/touch"), const_cast<char*>(path.c_str()), nullptr};
  for (auto _ : state) {
    pid_t pid = -1;
    if (::posix_spawn(&pid, "/usr/bin/touch", nullptr, nullptr, argv.data(), environ) != 0) {
      state.SkipWithError("posix_spawn failed");
      break;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
}

// 1,000 `cp in/kN OUT` commands, each reading its own small file: through
// penstock (built once per process, run once to fill the cache) and as
// build.ninja (built once).
struct noop_project {
  noop_project() : dir("command-noop") {
    fs::create_directories(dir.path() / "in");
    fs::create_directories(dir.path() / "out");
    std::string ninja_file = "rule cp\n  command = cp $in $out\nrule cat\n  command = cat $in > $out\n\n";
    std::string all_inputs;
    ps::detail::command_spec cat;
    cat.argv = {
        {.kind = ps::detail::command_part_kind::literal, .text = "sh", .index = 0},
        {.kind = ps::detail::command_part_kind::literal, .text = "-c", .index = 0},
        {.kind = ps::detail::command_part_kind::literal, .text = "out=$1; shift; cat \"$@\" > \"$out\"", .index = 0},
        {.kind = ps::detail::command_part_kind::literal, .text = "sh", .index = 0},
        {.kind = ps::detail::command_part_kind::output, .text = {}, .index = 0}};
    cat.outputs = {{.name = "all", .kind = ps::path_kind::file}};
    cat.set_output = &ps::detail::set_command_output<ps::file>;
    std::vector<ps::detail::command_input> cat_inputs;
    const auto& output_type = ps::detail::command_output_type_of<ps::file>();
    for (std::size_t k = 0; k < noop_commands; ++k) {
      const fs::path in = dir.path() / "in" / concat("k", std::to_string(k));
      write_text(in, concat("input ", std::to_string(k), "\n"));
      ninja_file += concat("build out/k", std::to_string(k), ": cp in/k", std::to_string(k), "\n");
      all_inputs += concat(" out/k", std::to_string(k));
      ps::detail::command_spec spec;
      spec.argv = {{.kind = ps::detail::command_part_kind::literal, .text = "cp", .index = 0},
                   {.kind = ps::detail::command_part_kind::source, .text = {}, .index = 0},
                   {.kind = ps::detail::command_part_kind::output, .text = {}, .index = 0}};
      spec.sources = {{.path = in, .glob = {}}};
      spec.outputs = {{.name = "out", .kind = ps::path_kind::file}};
      spec.set_output = &ps::detail::set_command_output<ps::file>;
      names.push_back(concat("cp", std::to_string(k)));
      auto copy = std::make_shared<const ps::detail::command_instance>(
          names.back(), ps::step_options{}, std::move(spec), std::vector<ps::detail::command_input>{}, output_type);
      cat.argv.push_back(
          {.kind = ps::detail::command_part_kind::input, .text = {}, .index = static_cast<std::uint32_t>(k)});
      cat.input_text.push_back(&ps::detail::node_argument_text<ps::file, ps::detail::whole_value, ps::file>);
      cat_inputs.push_back({.kind = ps::input_kind::node, .producer = copy, .type = "ps::file"});
    }
    ninja_file += concat("build all: cat", all_inputs, "\n");
    write_text(dir.path() / "build.ninja", ninja_file);
    auto all = std::make_shared<const ps::detail::command_instance>("cat", ps::step_options{}, std::move(cat),
                                                                    std::move(cat_inputs), output_type);
    lowered = ps::detail::r1::lower("command_noop", {all});
    options.threads = 2;
    options.tracking.enabled = false;  // the cache's own run record only, as a no-op rerun writes
    options.cache.enabled = true;
    options.cache.directory = (dir.path() / "cache").string();
    const auto first = ps::detail::r1::execute(ps::detail::r1::description(*lowered), options);
    if (!first.report.ok()) error = "the first penstock run failed: " + first.report.steps.front().error;
    if (run_program({"ninja", "-C", dir.path().string()}) != 0) error = "the first ninja run failed";
  }
  scratch_directory dir;
  std::deque<std::string> names;  // the steps' names: a step_base keeps a view
  std::shared_ptr<const ps::detail::r1::lowered_pipeline> lowered;
  ps::run_options options;
  std::string error;
};

noop_project& project() {
  static noop_project p;
  return p;
}

void penstock_noop(benchmark::State& state) {
  auto& p = project();
  if (!p.error.empty()) {
    state.SkipWithError(p.error.c_str());
    return;
  }
  const auto& graph = ps::detail::r1::description(*p.lowered);
  const auto& plan = ps::detail::r1::schedule_of(*p.lowered);
  for (auto _ : state) {
    const auto r = ps::detail::r1::execute(graph, p.options, &plan);
    if (r.report.cache_hits() != noop_commands + 1) {
      state.SkipWithError("a rerun was not all cache hits");
      break;
    }
  }
  state.counters["steps"] = static_cast<double>(noop_commands + 1);
}

void ninja_noop(benchmark::State& state) {
  auto& p = project();
  if (!p.error.empty()) {
    state.SkipWithError(p.error.c_str());
    return;
  }
  for (auto _ : state) {
    if (run_program({"ninja", "-C", p.dir.path().string()}) != 0) {
      state.SkipWithError("ninja failed");
      break;
    }
  }
  state.counters["steps"] = static_cast<double>(noop_commands + 1);
}

}  // namespace

BENCHMARK(penstock_spawn)->Name("BM_command_spawn/penstock")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(raw_spawn)->Name("BM_command_spawn/posix_spawn")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(penstock_noop)->Name("BM_command_noop/penstock")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(ninja_noop)->Name("BM_command_noop/ninja")->UseRealTime()->Unit(benchmark::kMillisecond);
