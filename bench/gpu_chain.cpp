// GPU workloads (ii) to (iv): a chain of 100 tiny GPU steps, "g0" (one kernel
// writing 256 zeros) then "g1" … "g99" (one kernel each, out = in + 1, one
// block), built through the DSL as chain.cpp builds its 100-step chain.
//
// (ii) BM_gpu_chain_100/penstock: a run of the chain, per step
//      (ns_per_step), against BM_gpu_chain_100/raw_launches: the same 100
//      kernels launched by hand on one stream. Goal: penstock_over_raw <= 2.
//      Each penstock step also allocates its output (cudaMallocAsync) and
//      frees its input (cudaFreeAsync), as GPU steps returning a new
//      ps::device_vector do; the raw chain reuses two buffers.
// (iii) BM_gpu_chain_100/cuda_graph: the same 100 kernels captured once as a
//      CUDA graph (stream capture) and replayed, per kernel: the target for
//      penstock. penstock does not capture GPU steps into graphs yet; it
//      enqueues each step on its own and records an event per step.
// (iv) gpu_host_synchronizations (run_report) as a counter: the chain alone
//      (BM_gpu_host_syncs/gpu_chain, goal 0: GPU steps wait for each other on
//      the device), and the chain feeding a CPU step that sums its output
//      (BM_gpu_host_syncs/gpu_chain_then_cpu, expected 1: the copy to the
//      host). BM_gpu_chain_100/penstock reports it too.
//
// BM_gpu_chain_100/penstock times the raw launches and the graph interleaved
// with its runs, in the same process, and reports the ratios as counters.
#include <benchmark/benchmark.h>

#include <penstock/penstock.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "dispatch_counters.hpp"
#include "gpu_bench_support.hpp"
#include "gpu_kernels.hpp"
#include "indexed_name.hpp"

namespace ps = penstock;
namespace gpu = penstock_bench::gpu;

namespace {

constexpr std::size_t chain_steps = 100;

struct seed {
  ps::device_vector<float> operator()(ps::gpu_context& ctx) const { return gpu::seed_step(ctx); }
};
struct increment {
  ps::device_vector<float> operator()(ps::gpu_context& ctx, const ps::device_vector<float>& x) const {
    return gpu::increment_step(ctx, x);
  }
};
// The CPU step of (iv): its std::vector parameter takes the GPU chain's
// output, which the runtime copies to the host.
struct sum_on_host {
  float operator()(const std::vector<float>& values) const {
    return std::accumulate(values.begin(), values.end(), 0.0f);
  }
};

// `node >> chain_link<I>{}` applies GPU step "gI" to node; a left fold over
// 1..N-1 builds the chain with no template recursion (as in chain.cpp).
template <std::size_t I>
struct chain_link {};

template <class T, class G, class P, std::size_t I>
auto operator>>(const ps::node<T, G, P>& previous, chain_link<I>) {
  return ps::step<penstock_bench::indexed_name<'g', I>()>(increment{}).on(ps::gpu)(previous);
}

template <std::size_t... I>
auto gpu_chain(std::index_sequence<I...>) {
  auto first = ps::step<"g0">(seed{}).on(ps::gpu)();
  return (first >> ... >> chain_link<I + 1>{});
}

// The chain's last node, "g99".
const auto& chain_end() {
  static const auto last = gpu_chain(std::make_index_sequence<chain_steps - 1>{});
  return last;
}

// Whether the chain's output is what 99 increments of 0 make, on the device.
bool chain_output_ok(benchmark::State& state, const ps::device_vector<float>& out) {
  const std::vector<float> values = out.to_host();
  const bool ok = values.size() == gpu::tiny_elements && std::all_of(values.begin(), values.end(), [](float v) {
                    return v == static_cast<float>(chain_steps - 1);
                  });
  if (!ok) state.SkipWithError("the GPU chain's output is wrong: not every step's kernel ran, in order");
  return ok;
}

// --- (ii) and (iii): penstock, raw launches, CUDA graph ----------------------

void penstock_chain(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] {
    const auto& last = chain_end();
    const auto pipeline = ps::pipeline<"gpu_chain">(last);
    const ps::run_options options = gpu::run_options();
    gpu::raw_chain peer(chain_steps);
    {
      const auto check = pipeline.run(options);
      if (!gpu::check_run(state, check) || !chain_output_ok(state, check.value(last))) return;
    }
    peer.launches();
    peer.graph();

    double penstock_s = 0;
    double raw_s = 0;
    double graph_s = 0;
    std::uint64_t host_syncs = 0;
    for (auto _ : state) {
      penstock_s += gpu::seconds_of([&] {
        const auto result = pipeline.run(options);
        host_syncs = std::max(host_syncs, result.report().gpu_host_synchronizations);
        benchmark::DoNotOptimize(result.ok());
      });
      raw_s += gpu::interleaved(state, [&] { peer.launches(); });
      graph_s += gpu::interleaved(state, [&] { peer.graph(); });
    }
    penstock_bench::report_dispatch(state, chain_steps);
    const double per_step = 1e9 / static_cast<double>(state.iterations()) / static_cast<double>(chain_steps);
    state.counters["raw_ns_per_step"] = raw_s * per_step;
    state.counters["graph_ns_per_step"] = graph_s * per_step;
    state.counters["penstock_over_raw"] = penstock_s / raw_s;
    state.counters["penstock_over_graph"] = penstock_s / graph_s;
    state.counters["gpu_host_synchronizations"] = static_cast<double>(host_syncs);
  });
}

void raw_chain_launches(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] {
    gpu::raw_chain peer(chain_steps);
    peer.launches();
    if (peer.last_value() != static_cast<float>(chain_steps - 1)) {
      state.SkipWithError("the raw chain's output is wrong");
      return;
    }
    for (auto _ : state) peer.launches();
    penstock_bench::report_dispatch(state, chain_steps);
  });
}

// Capture (on the first graph() call) is outside the timing: only replays
// are timed.
void cuda_graph_chain(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] {
    gpu::raw_chain peer(chain_steps);
    peer.graph();
    if (peer.last_value() != static_cast<float>(chain_steps - 1)) {
      state.SkipWithError("the CUDA graph's output is wrong");
      return;
    }
    for (auto _ : state) peer.graph();
    penstock_bench::report_dispatch(state, chain_steps);
  });
}

// --- (iv): host synchronizations ----------------------------------------------

// Runs `pipeline` and reports the most host synchronizations a run made,
// with what the goal is (`expected`).
template <class Pipeline>
void count_host_syncs(benchmark::State& state, const Pipeline& pipeline, std::uint64_t expected) {
  const ps::run_options options = gpu::run_options();
  if (!gpu::check_run(state, pipeline.run(options))) return;
  std::uint64_t host_syncs = 0;
  for (auto _ : state) {
    const auto result = pipeline.run(options);
    host_syncs = std::max(host_syncs, result.report().gpu_host_synchronizations);
    benchmark::DoNotOptimize(result.ok());
  }
  state.counters["gpu_host_synchronizations"] = static_cast<double>(host_syncs);
  state.counters["expected"] = static_cast<double>(expected);
  if (host_syncs != expected) {
    state.SetLabel(std::string("UNEXPECTED: ") + std::to_string(host_syncs) + " host synchronizations, expected " +
                   std::to_string(expected));
  }
}

void host_syncs_gpu_chain(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] { count_host_syncs(state, ps::pipeline<"gpu_chain">(chain_end()), 0); });
}

void host_syncs_gpu_chain_then_cpu(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] {
    const auto total = ps::step<"sum">(sum_on_host{})(chain_end());
    count_host_syncs(state, ps::pipeline<"gpu_chain_then_cpu">(total), 1);
  });
}

}  // namespace

BENCHMARK(penstock_chain)->Name("BM_gpu_chain_100/penstock")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(raw_chain_launches)->Name("BM_gpu_chain_100/raw_launches")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_graph_chain)->Name("BM_gpu_chain_100/cuda_graph")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(host_syncs_gpu_chain)->Name("BM_gpu_host_syncs/gpu_chain")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(host_syncs_gpu_chain_then_cpu)
    ->Name("BM_gpu_host_syncs/gpu_chain_then_cpu")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
