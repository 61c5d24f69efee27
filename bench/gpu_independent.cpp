// GPU workload (i): k independent GPU steps (k = 1, 2, 4, 8), each one
// kernel of spin_blocks blocks that spin for about 1 ms of clock cycles (a
// small fraction of an H100/H200). penstock enqueues each on a stream of its
// run's pool, so they may overlap; the peer is the same k kernels serialized
// on one stream by hand. serialized / penstock is the speed-up concurrency
// gives (goal: close to k for k <= 4). The hand-written concurrent version
// (one stream per kernel) is the most the device gives.
//   BM_gpu_independent/penstock/k:K      a run of the k-step pipeline; its
//       counters time the peers interleaved with it, in the same process:
//       serialized_over_penstock, penstock_over_raw_streams, kernel_ms
//   BM_gpu_independent/serialized/k:K    k launches on one stream, host waits
//   BM_gpu_independent/raw_streams/k:K   k launches on k streams, host waits
#include <benchmark/benchmark.h>

#include <penstock/penstock.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "gpu_bench_support.hpp"
#include "gpu_kernels.hpp"
#include "indexed_name.hpp"

namespace ps = penstock;
namespace gpu = penstock_bench::gpu;

namespace {

// The spin: about one millisecond of device 0's clock (its rated clock; the
// kernel_ms counter says what it took).
long long spin_cycles() {
  static const long long cycles = gpu::cycles_per_millisecond();
  return cycles;
}

struct spin {
  long long cycles;
  ps::device_vector<float> operator()(ps::gpu_context& ctx) const { return gpu::spin_step(ctx, cycles); }
  bool operator==(const spin&) const = default;
};

// Steps "s0" … "s<k-1>", none reading another; each is an output.
template <std::size_t... I>
auto independent_pipeline(long long cycles, std::index_sequence<I...>) {
  return ps::pipeline<"gpu_independent">(
      ps::step<penstock_bench::indexed_name<'s', I>()>(spin{cycles}).on(ps::gpu)()...);
}

template <std::size_t K>
void penstock_independent(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] {
    const long long cycles = spin_cycles();
    const auto pipeline = independent_pipeline(cycles, std::make_index_sequence<K>{});
    const ps::run_options options = gpu::run_options();
    gpu::raw_independent peer(static_cast<int>(K), cycles);
    if (!gpu::check_run(state, pipeline.run(options))) return;
    peer.serialized();
    peer.concurrent();

    double penstock_s = 0;
    double serialized_s = 0;
    double streams_s = 0;
    std::uint64_t host_syncs = 0;
    for (auto _ : state) {
      penstock_s += gpu::seconds_of([&] {
        const auto result = pipeline.run(options);
        host_syncs = std::max(host_syncs, result.report().gpu_host_synchronizations);
        benchmark::DoNotOptimize(result.ok());
      });
      serialized_s += gpu::interleaved(state, [&] { peer.serialized(); });
      streams_s += gpu::interleaved(state, [&] { peer.concurrent(); });
    }
    const double n = static_cast<double>(state.iterations());
    state.counters["steps"] = static_cast<double>(K);
    state.counters["kernel_ms"] = serialized_s / n / static_cast<double>(K) * 1e3;
    state.counters["serialized_us"] = serialized_s / n * 1e6;
    state.counters["raw_streams_us"] = streams_s / n * 1e6;
    state.counters["serialized_over_penstock"] = serialized_s / penstock_s;
    state.counters["penstock_over_raw_streams"] = penstock_s / streams_s;
    state.counters["gpu_host_synchronizations"] = static_cast<double>(host_syncs);
  });
}

template <std::size_t K>
void serialized_independent(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] {
    gpu::raw_independent peer(static_cast<int>(K), spin_cycles());
    peer.serialized();
    for (auto _ : state) peer.serialized();
    state.counters["steps"] = static_cast<double>(K);
  });
}

template <std::size_t K>
void raw_streams_independent(benchmark::State& state) {
  if (gpu::skip_without_gpu(state)) return;
  gpu::guarded(state, [&] {
    gpu::raw_independent peer(static_cast<int>(K), spin_cycles());
    peer.concurrent();
    for (auto _ : state) peer.concurrent();
    state.counters["steps"] = static_cast<double>(K);
  });
}

}  // namespace

#define PENSTOCK_GPU_INDEPENDENT(K)                  \
  BENCHMARK(penstock_independent<K>)                 \
      ->Name("BM_gpu_independent/penstock/k:" #K)    \
      ->UseRealTime()                                \
      ->Unit(benchmark::kMicrosecond);               \
  BENCHMARK(serialized_independent<K>)               \
      ->Name("BM_gpu_independent/serialized/k:" #K)  \
      ->UseRealTime()                                \
      ->Unit(benchmark::kMicrosecond);               \
  BENCHMARK(raw_streams_independent<K>)              \
      ->Name("BM_gpu_independent/raw_streams/k:" #K) \
      ->UseRealTime()                                \
      ->Unit(benchmark::kMicrosecond)

PENSTOCK_GPU_INDEPENDENT(1);
PENSTOCK_GPU_INDEPENDENT(2);
PENSTOCK_GPU_INDEPENDENT(4);
PENSTOCK_GPU_INDEPENDENT(8);
