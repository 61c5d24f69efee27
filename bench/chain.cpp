// Workload (ii): a chain of 1,000 empty steps, each taking the previous
// step's int. penstock: the chain as a graph_description lowered by hand
// (hand_lowered_graph.hpp): 1,000 distinct step types spelled through the DSL
// would cost minutes of compile time (this file's 100-step chain already
// takes about 20 s; RESULTS.md); oneTBB flow graph:
// 1,000 continue_nodes in a line. A 100-step chain is also run both ways on
// the penstock side, through the DSL and lowered by hand, to show that the
// hand-lowered graph costs what the DSL's would.
#include <benchmark/benchmark.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include <penstock/penstock.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dispatch_counters.hpp"
#include "hand_lowered_graph.hpp"
#include "indexed_name.hpp"

namespace ps = penstock;
namespace flow = tbb::flow;

namespace {

constexpr std::size_t steps = 1'000;
constexpr std::size_t dsl_steps = 100;

// The empty steps: the first makes an int, each other passes it on.
struct source {
  int operator()() const noexcept { return 1; }
};
struct pass {
  int operator()(int x) const noexcept { return x; }
};

const ps::run_options options{
    .threads = penstock_bench::threads, .progress = ps::progress_mode::none, .tracking = {.enabled = false}};

// --- penstock, lowered by hand ---------------------------------------------

constexpr source source_step{};
constexpr pass pass_step{};

void build_chain(penstock_bench::hand_lowered_graph& chain, std::size_t n) {
  std::uint32_t last = chain.add<0>("c0", source_step, {});
  for (std::size_t i = 1; i < n; ++i) last = chain.add<1>(penstock_bench::runtime_name('c', i), pass_step, {last});
  chain.mark_output(last);
}

void run_hand_lowered(benchmark::State& state, std::size_t n) {
  penstock_bench::hand_lowered_graph chain("chain");
  build_chain(chain, n);
  const ps::graph_description& description = chain.description();
  // Derived once, as ps::pipeline does when it is built.
  const auto plan = ps::detail::r1::make_schedule(description);
  {
    const auto check = ps::detail::r1::execute(description, options, plan.get());
    const void* out = ps::detail::r1::output_slot(*check.state, n - 1);
    if (!check.report.ok() || out == nullptr || **static_cast<const std::optional<int>*>(out) != 1) {
      state.SkipWithError("the hand-lowered chain did not run every step");
      return;
    }
  }
  for (auto _ : state) {
    const auto outcome = ps::detail::r1::execute(description, options, plan.get());
    benchmark::DoNotOptimize(outcome.report.steps.data());
  }
  penstock_bench::report_dispatch(state, n);
}

void penstock_chain(benchmark::State& state) { run_hand_lowered(state, steps); }
void penstock_chain_100_hand_lowered(benchmark::State& state) { run_hand_lowered(state, dsl_steps); }

// --- penstock, through the DSL (100 steps) ---------------------------------

// `node >> chain_link<I>{}` applies step "cI" to node; a left fold over
// 1..N-1 builds the chain with no template recursion.
template <std::size_t I>
struct chain_link {};

template <class T, class G, class P, std::size_t I>
auto operator>>(const ps::node<T, G, P>& previous, chain_link<I>) {
  return ps::step<penstock_bench::indexed_name<'c', I>()>(pass{})(previous);
}

template <std::size_t... I>
auto dsl_chain(std::index_sequence<I...>) {
  auto first = ps::step<"c0">(source{})();
  auto last = (first >> ... >> chain_link<I + 1>{});
  return std::pair{ps::pipeline<"chain">(last), last};
}

void penstock_chain_100_dsl(benchmark::State& state) {
  const auto [pipeline, last] = dsl_chain(std::make_index_sequence<dsl_steps - 1>{});
  if (pipeline.description().nodes.size() != dsl_steps) {
    state.SkipWithError("the DSL chain has the wrong number of steps");
    return;
  }
  {
    const auto check = pipeline.run(options);
    if (!check.ok() || check.value(last) != 1) {
      state.SkipWithError("the DSL chain did not run every step");
      return;
    }
  }
  for (auto _ : state) {
    const auto result = pipeline.run(options);
    benchmark::DoNotOptimize(result.ok());
  }
  penstock_bench::report_dispatch(state, dsl_steps);
}

// --- oneTBB flow graph -----------------------------------------------------

void run_flow_graph(benchmark::State& state, std::size_t n) {
  tbb::task_arena arena(penstock_bench::threads);
  arena.execute([&] {
    // Built inside the arena, which the graph attaches to and runs in.
    flow::graph graph;
    std::vector<std::unique_ptr<flow::continue_node<flow::continue_msg>>> nodes;
    nodes.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      nodes.push_back(std::make_unique<flow::continue_node<flow::continue_msg>>(
          graph, [](const flow::continue_msg&) { return flow::continue_msg{}; }));
      if (i != 0) flow::make_edge(*nodes[i - 1], *nodes[i]);
    }
    for (auto _ : state) {
      nodes.front()->try_put(flow::continue_msg{});
      graph.wait_for_all();
    }
  });
  penstock_bench::report_dispatch(state, n);
}

void flow_graph_chain(benchmark::State& state) { run_flow_graph(state, steps); }
void flow_graph_chain_100(benchmark::State& state) { run_flow_graph(state, dsl_steps); }

}  // namespace

BENCHMARK(penstock_chain)->Name("BM_chain/penstock")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(flow_graph_chain)->Name("BM_chain/flow_graph")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(penstock_chain_100_dsl)->Name("BM_chain_100/penstock_dsl")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(penstock_chain_100_hand_lowered)
    ->Name("BM_chain_100/penstock_hand_lowered")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(flow_graph_chain_100)->Name("BM_chain_100/flow_graph")->UseRealTime()->Unit(benchmark::kMicrosecond);
