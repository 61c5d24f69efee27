// The GPU benchmarks' device code (gpu_kernels.cu, compiled by nvcc): the GPU
// steps that penstock runs, and their raw-CUDA peers, the same kernels
// launched by hand. The benchmarks (gpu_*.cpp) are C++ built by the host
// compiler and reach CUDA only through this header, which includes no CUDA
// header and is valid C++17.
#pragma once

#include <cstddef>
#include <memory>

#include <penstock/device_vector.hpp>
#include <penstock/gpu_context.hpp>

namespace penstock_bench::gpu {

// The spinning kernel: this many blocks of this many threads, each thread
// busy-waiting on clock64(). A small fraction of an H100/H200 (132 SMs): k of
// them, k <= 8, fit on the device at once.
inline constexpr unsigned spin_blocks = 4;
inline constexpr unsigned spin_threads = 128;
inline constexpr std::size_t spin_elements = std::size_t{spin_blocks} * spin_threads;

// The tiny kernel: one block; out[i] = in[i] + 1 over this many floats.
inline constexpr std::size_t tiny_elements = 256;

// Device 0's clock cycles in one millisecond (its clock rate in kHz), so a
// spin of that many cycles lasts about 1 ms. Throws cuda_error.
[[nodiscard]] long long cycles_per_millisecond();

// --- GPU steps: ps::step<...>(fn).on(ps::gpu), kernels on ctx.stream() -----

// spin_elements floats, written by the spinning kernel after `cycles` cycles.
[[nodiscard]] penstock::device_vector<float> spin_step(penstock::gpu_context& ctx, long long cycles);
// tiny_elements zeros (a chain's first step).
[[nodiscard]] penstock::device_vector<float> seed_step(penstock::gpu_context& ctx);
// A new vector of x[i] + 1 (one tiny kernel).
[[nodiscard]] penstock::device_vector<float> increment_step(penstock::gpu_context& ctx,
                                                            const penstock::device_vector<float>& x);

// --- raw CUDA peers ---------------------------------------------------------

// `kernels` spinning kernels, each writing a buffer of its own, allocated once.
class raw_independent {
 public:
  raw_independent(int kernels, long long cycles);  // throws cuda_error
  ~raw_independent();
  raw_independent(const raw_independent&) = delete;
  raw_independent& operator=(const raw_independent&) = delete;

  // All of them one after the other on one stream, then the host waits for it.
  void serialized();
  // Kernel i on stream i (stream 0 then waits for the others' events), then
  // the host waits for stream 0: the most concurrency the hardware gives.
  void concurrent();

 private:
  struct state;
  std::unique_ptr<state> state_;
};

// A chain of `kernels` kernels on one stream: the seed kernel, then
// kernels - 1 tiny kernels, each reading the previous one's output (two
// buffers, allocated once, used in turn).
class raw_chain {
 public:
  explicit raw_chain(std::size_t kernels);  // throws cuda_error
  ~raw_chain();
  raw_chain(const raw_chain&) = delete;
  raw_chain& operator=(const raw_chain&) = delete;

  // Launches the kernels one by one, then the host waits for the stream.
  void launches();
  // Replays the chain captured once as a CUDA graph (stream capture, on the
  // first call), then the host waits for the stream.
  void graph();
  // The first value of the last kernel's output (kernels - 1 when the chain
  // ran), after the work enqueued so far.
  [[nodiscard]] float last_value();

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace penstock_bench::gpu
