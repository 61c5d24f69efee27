// The GPU tests' own kernels, compiled by nvcc (kernels.cu), and the host
// memory they need. The tests are C++ built by the host compiler with
// GoogleTest and call these launchers, as pipeline code will call its own.
#pragma once

#include <cstddef>

#include <penstock/cuda/stream.hpp>

namespace penstock_test::cuda {

// An int in pinned, device-mapped host memory that kernels wait on until the
// host opens it: a test holds a stream's work back for as long as it likes
// and checks what other streams do meanwhile, without timing anything.
class host_gate {
 public:
  host_gate();  // closed; throws cuda_error
  // Opens the gate, then frees it: cudaFreeHost waits for the device, so a
  // test that fails while the gate is closed must not hang on it.
  ~host_gate();
  host_gate(const host_gate&) = delete;
  host_gate& operator=(const host_gate&) = delete;

  void open() noexcept;
  [[nodiscard]] int* device_pointer() const noexcept { return device_flag_; }

 private:
  int* flag_ = nullptr;
  int* device_flag_ = nullptr;
};

// `size` ints of pinned host memory (cudaMallocHost), so that copies to and
// from it are asynchronous (into pageable memory CUDA copies synchronously).
class pinned_ints {
 public:
  explicit pinned_ints(std::size_t size);  // throws cuda_error
  ~pinned_ints();
  pinned_ints(const pinned_ints&) = delete;
  pinned_ints& operator=(const pinned_ints&) = delete;

  [[nodiscard]] int* data() noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  int& operator[](std::size_t i) noexcept { return data_[i]; }

 private:
  int* data_ = nullptr;
  std::size_t size_;
};

// What gated_scale writes when the gate stayed closed for a minute: a broken
// test fails with this value instead of hanging.
inline constexpr int gate_gave_up = -999'999;

// On `stream`: once `gate` is open, data[i] *= factor for i < n. Throws
// cuda_error if the launch fails.
void launch_gated_scale(const host_gate& gate, int* data, std::size_t n, int factor,
                        penstock::cuda::stream_view stream);

// On `stream`: out[i] = in[i] + addend for i < n.
void launch_add(const int* in, int* out, std::size_t n, int addend, penstock::cuda::stream_view stream);

}  // namespace penstock_test::cuda
