// Workload (i): 10,000 independent empty steps. penstock: one ps::map node
// over a std::vector of 10,000 ints (one task per element at run time);
// oneTBB flow graph: 10,000 continue_nodes fed by one broadcast_node. Both
// graphs are built once, outside the timing loop.
#include <benchmark/benchmark.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include <penstock/penstock.hpp>

#include <cstddef>
#include <memory>
#include <vector>

#include "dispatch_counters.hpp"

namespace ps = penstock;
namespace flow = tbb::flow;

namespace {

constexpr std::size_t steps = 10'000;

// The empty step: an int in, the same int out.
struct pass {
  int operator()(int x) const noexcept { return x; }
};

void penstock_independent(benchmark::State& state) {
  // The map's input is made by a step of its own: two more nodes per run
  // (the input and the map) on top of the 10,000 element tasks.
  auto input = ps::step<"input">([] { return std::vector<int>(steps, 1); })();
  auto elements = ps::map<"independent">(pass{})(input);
  const auto pipeline = ps::pipeline<"independent">(elements);
  const ps::run_options options{
      .threads = penstock_bench::threads, .progress = ps::progress_mode::none, .tracking = {.enabled = false}};

  {
    const auto check = pipeline.run(options);
    if (!check.ok() || check.value(elements).size() != steps) {
      state.SkipWithError("the penstock pipeline did not run every step");
      return;
    }
  }
  for (auto _ : state) {
    const auto result = pipeline.run(options);
    benchmark::DoNotOptimize(result.ok());
  }
  penstock_bench::report_dispatch(state, steps);
}

void flow_graph_independent(benchmark::State& state) {
  tbb::task_arena arena(penstock_bench::threads);
  arena.execute([&] {
    // Built inside the arena: a flow graph attaches to the arena it is
    // constructed in and runs its tasks there.
    flow::graph graph;
    flow::broadcast_node<flow::continue_msg> start(graph);
    std::vector<std::unique_ptr<flow::continue_node<flow::continue_msg>>> nodes;
    nodes.reserve(steps);
    for (std::size_t i = 0; i < steps; ++i) {
      nodes.push_back(std::make_unique<flow::continue_node<flow::continue_msg>>(
          graph, [](const flow::continue_msg&) { return flow::continue_msg{}; }));
      flow::make_edge(start, *nodes.back());
    }
    for (auto _ : state) {
      start.try_put(flow::continue_msg{});
      graph.wait_for_all();
    }
  });
  penstock_bench::report_dispatch(state, steps);
}

}  // namespace

BENCHMARK(penstock_independent)->Name("BM_independent/penstock")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(flow_graph_independent)->Name("BM_independent/flow_graph")->UseRealTime()->Unit(benchmark::kMicrosecond);
