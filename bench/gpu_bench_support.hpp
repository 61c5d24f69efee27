// What every GPU benchmark shares: the device check that skips a benchmark,
// saying why, where there is no usable CUDA device (so running the binary on
// a machine without a GPU is harmless), the run options, and the timing of
// the raw-CUDA peer interleaved with penstock's runs.
#pragma once

#include <benchmark/benchmark.h>

#include <penstock/cuda/device.hpp>
#include <penstock/penstock.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

#include "dispatch_counters.hpp"

namespace penstock_bench::gpu {

// "" when device 0 can run penstock's GPU steps; otherwise why not, as
// "no CUDA device: <CUDA's description>" when there is none.
inline const std::string& why_no_gpu() {
  static const std::string why = []() -> std::string {
    try {
      if (penstock::cuda::device_count() == 0) return penstock::cuda::no_device_reason();
      const auto info = penstock::cuda::device_info(0);
      if (!info.memory_pools_supported) {
        return "no usable CUDA device: device 0 (" + info.name +
               ") has no stream-ordered allocation (cudaMallocAsync), which penstock's GPU steps need";
      }
      return {};
    } catch (const std::exception& e) {
      return std::string("no usable CUDA device: ") + e.what();
    }
  }();
  return why;
}

// Call first: true, the benchmark skipped with the reason, when there is no
// device; otherwise labels the benchmark with the device's name.
inline bool skip_without_gpu(benchmark::State& state) {
  if (!why_no_gpu().empty()) {
    state.SkipWithError(why_no_gpu().c_str());
    return true;
  }
  static const std::string name = penstock::cuda::device_info(0).name;
  state.SetLabel(name);
  return false;
}

// Runs the benchmark's body; a CUDA or penstock error skips the benchmark
// with its message instead of ending the process.
template <class Body>
void guarded(benchmark::State& state, Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    const std::string message = std::string("failed: ") + e.what();
    state.SkipWithError(message.c_str());
  }
}

// GPU steps on CUDA (the run fails before any step if there is no device),
// the cache off, at the concurrency of the CPU benchmarks.
inline penstock::run_options run_options() {
  penstock::run_options options;
  options.threads = static_cast<std::size_t>(threads);
  options.progress = penstock::progress_mode::none;
  options.cache.enabled = false;
  options.tracking.enabled = false;
  options.gpu = penstock::gpu_backend::cuda;
  return options;
}

// Skips the benchmark, with the run's summary, unless `result` succeeded on
// CUDA. Returns whether it did.
inline bool check_run(benchmark::State& state, const penstock::run_result& result) {
  const auto& report = result.report();
  if (result.ok() && report.gpu == penstock::gpu_backend::cuda) return true;
  std::string message = "the check run failed: ";
  message.append(report.summary());
  if (report.gpu != penstock::gpu_backend::cuda) message.append(" (its GPU steps did not run on CUDA)");
  state.SkipWithError(message.c_str());
  return false;
}

// The wall-clock seconds `f()` takes.
template <class F>
double seconds_of(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Times `peer()` once, outside the benchmark's timing: called inside the
// timing loop after each penstock run, so that both sides see the same
// device, clocks and noise, and one run of the binary gives the ratio.
template <class Peer>
double interleaved(benchmark::State& state, Peer&& peer) {
  state.PauseTiming();
  const double s = seconds_of(peer);
  state.ResumeTiming();
  return s;
}

}  // namespace penstock_bench::gpu
