// Workload (iii): 20 layers of 50 empty steps; step j of a layer takes the
// ints of steps j and j+1 (mod 50) of the layer before. penstock: the graph
// lowered by hand (hand_lowered_graph.hpp), because 1,000 distinct step types
// through the DSL would cost minutes of compile time (RESULTS.md); oneTBB flow graph:
// the same shape of continue_nodes, the first layer fed by a broadcast_node.
// A 5×10 layered graph is also run both ways on the penstock side, through
// the DSL and lowered by hand, to show that the two cost the same.
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
#include <tuple>
#include <utility>
#include <vector>

#include "dispatch_counters.hpp"
#include "hand_lowered_graph.hpp"
#include "indexed_name.hpp"

namespace ps = penstock;
namespace flow = tbb::flow;

namespace {

struct shape {
  std::size_t layers;
  std::size_t width;
  [[nodiscard]] constexpr std::size_t steps() const { return layers * width; }
};
constexpr shape full{.layers = 20, .width = 50};
constexpr shape small{.layers = 5, .width = 10};

// The empty steps: the first layer makes ints, every other step takes two.
struct source {
  int operator()() const noexcept { return 1; }
};
struct join {
  int operator()(int a, int b) const noexcept { return a + b - 1; }  // stays 1
};

const ps::run_options options{
    .threads = penstock_bench::threads, .progress = ps::progress_mode::none, .tracking = {.enabled = false}};

// --- penstock, lowered by hand ---------------------------------------------

constexpr source source_step{};
constexpr join join_step{};

void build_layers(penstock_bench::hand_lowered_graph& g, shape s) {
  std::vector<std::uint32_t> previous(s.width);
  std::vector<std::uint32_t> current(s.width);
  for (std::size_t j = 0; j < s.width; ++j)
    previous[j] = g.add<0>(penstock_bench::runtime_name('l', j), source_step, {});
  for (std::size_t layer = 1; layer < s.layers; ++layer) {
    for (std::size_t j = 0; j < s.width; ++j) {
      current[j] = g.add<2>(penstock_bench::runtime_name('l', layer * s.width + j), join_step,
                            {previous[j], previous[(j + 1) % s.width]});
    }
    previous.swap(current);
  }
  for (auto o : previous) g.mark_output(o);
}

void run_hand_lowered(benchmark::State& state, shape s) {
  penstock_bench::hand_lowered_graph layers("layered");
  build_layers(layers, s);
  const ps::graph_description& description = layers.description();
  // Derived once, as ps::pipeline does when it is built.
  const auto plan = ps::detail::r1::make_schedule(description);
  {
    const auto check = ps::detail::r1::execute(description, options, plan.get());
    bool ok = check.report.ok();
    for (std::size_t j = s.steps() - s.width; j < s.steps(); ++j) {
      const void* out = ps::detail::r1::output_slot(*check.state, j);
      ok = ok && out != nullptr && **static_cast<const std::optional<int>*>(out) == 1;
    }
    if (!ok) {
      state.SkipWithError("the hand-lowered layered graph did not run every step");
      return;
    }
  }
  for (auto _ : state) {
    const auto outcome = ps::detail::r1::execute(description, options, plan.get());
    benchmark::DoNotOptimize(outcome.report.steps.data());
  }
  penstock_bench::report_dispatch(state, s.steps());
}

void penstock_layered(benchmark::State& state) { run_hand_lowered(state, full); }
void penstock_layered_small_hand_lowered(benchmark::State& state) { run_hand_lowered(state, small); }

// --- penstock, through the DSL (the small shape) ---------------------------

// `layer_tuple >> next_layer<L>{}` applies layer L's steps to the tuple of
// layer L-1's nodes; a left fold over the layers builds the graph with no
// template recursion.
template <std::size_t L>
struct next_layer {};

template <std::size_t... J>
auto first_layer(std::index_sequence<J...>) {
  return std::tuple{ps::step<penstock_bench::indexed_name<'l', J>()>(source{})()...};
}

template <class... Nodes, std::size_t L>
auto operator>>(const std::tuple<Nodes...>& previous, next_layer<L>) {
  constexpr std::size_t width = sizeof...(Nodes);
  return [&]<std::size_t... J>(std::index_sequence<J...>) {
    return std::tuple{ps::step<penstock_bench::indexed_name<'l', L * width + J>()>(join{})(
        std::get<J>(previous), std::get<(J + 1) % width>(previous))...};
  }
  (std::make_index_sequence<width>{});
}

template <std::size_t... L>
auto dsl_layers(std::index_sequence<L...>) {
  auto last = (first_layer(std::make_index_sequence<small.width>{}) >> ... >> next_layer<L + 1>{});
  auto pipeline = std::apply([](const auto&... n) { return ps::pipeline<"layered">(n...); }, last);
  return std::pair{pipeline, last};
}

void penstock_layered_small_dsl(benchmark::State& state) {
  const auto [pipeline, last] = dsl_layers(std::make_index_sequence<small.layers - 1>{});
  if (pipeline.description().nodes.size() != small.steps()) {
    state.SkipWithError("the DSL layers have the wrong number of steps");
    return;
  }
  {
    const auto check = pipeline.run(options);
    const bool ok = check.ok() && std::apply([&](const auto&... n) { return ((check.value(n) == 1) && ...); }, last);
    if (!ok) {
      state.SkipWithError("the DSL layered graph did not run every step");
      return;
    }
  }
  for (auto _ : state) {
    const auto result = pipeline.run(options);
    benchmark::DoNotOptimize(result.ok());
  }
  penstock_bench::report_dispatch(state, small.steps());
}

// --- oneTBB flow graph -----------------------------------------------------

void run_flow_graph(benchmark::State& state, shape s) {
  tbb::task_arena arena(penstock_bench::threads);
  arena.execute([&] {
    // Built inside the arena, which the graph attaches to and runs in.
    flow::graph graph;
    flow::broadcast_node<flow::continue_msg> start(graph);
    std::vector<std::unique_ptr<flow::continue_node<flow::continue_msg>>> nodes;
    nodes.reserve(s.steps());
    for (std::size_t layer = 0; layer < s.layers; ++layer) {
      for (std::size_t j = 0; j < s.width; ++j) {
        nodes.push_back(std::make_unique<flow::continue_node<flow::continue_msg>>(
            graph, [](const flow::continue_msg&) { return flow::continue_msg{}; }));
        if (layer == 0) {
          flow::make_edge(start, *nodes.back());
        } else {
          const std::size_t base = (layer - 1) * s.width;
          flow::make_edge(*nodes[base + j], *nodes.back());
          flow::make_edge(*nodes[base + (j + 1) % s.width], *nodes.back());
        }
      }
    }
    for (auto _ : state) {
      start.try_put(flow::continue_msg{});
      graph.wait_for_all();
    }
  });
  penstock_bench::report_dispatch(state, s.steps());
}

void flow_graph_layered(benchmark::State& state) { run_flow_graph(state, full); }
void flow_graph_layered_small(benchmark::State& state) { run_flow_graph(state, small); }

}  // namespace

BENCHMARK(penstock_layered)->Name("BM_layered/penstock")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(flow_graph_layered)->Name("BM_layered/flow_graph")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(penstock_layered_small_dsl)
    ->Name("BM_layered_5x10/penstock_dsl")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(penstock_layered_small_hand_lowered)
    ->Name("BM_layered_5x10/penstock_hand_lowered")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(flow_graph_layered_small)->Name("BM_layered_5x10/flow_graph")->UseRealTime()->Unit(benchmark::kMicrosecond);
