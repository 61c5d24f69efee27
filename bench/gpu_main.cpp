// penstock_gpu_bench's main: Google Benchmark's, plus the CUDA device in the
// report's context (console and JSON), and a line on stderr when there is
// none (every benchmark then skips, saying why).
//   penstock_gpu_bench --device   prints the device, or why there is none,
//                                 and exits 0 with a device, 1 without
//                                 (bench/run.sh --gpu asks this first)
#include <benchmark/benchmark.h>

#include <penstock/cuda/device.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "gpu_bench_support.hpp"

namespace {

// "NVIDIA H200 (sm_90, 132 SMs, driver 13000, runtime 13000)", or why there
// is no usable device.
std::string describe_device() {
  const std::string& why = penstock_bench::gpu::why_no_gpu();
  if (!why.empty()) return why;
  try {
    const auto d = penstock::cuda::device_info(0);
    return d.name + " (sm_" + std::to_string(d.compute_capability_major) + std::to_string(d.compute_capability_minor) +
           ", " + std::to_string(d.multiprocessor_count) + " SMs, CUDA driver " + std::to_string(d.driver_version) +
           ", runtime " + std::to_string(d.runtime_version) + ")";
  } catch (const std::exception& e) {
    return std::string("no usable CUDA device: ") + e.what();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool has_device = penstock_bench::gpu::why_no_gpu().empty();
  if (argc == 2 && std::string_view(argv[1]) == "--device") {
    std::printf("%s\n", describe_device().c_str());
    return has_device ? 0 : 1;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string device = describe_device();
  benchmark::AddCustomContext("cuda_device", device);
  if (!has_device) std::fprintf(stderr, "penstock_gpu_bench: %s: every benchmark skips\n", device.c_str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
