// The GPU tests' kernels and pinned host memory (kernels.hpp says why each
// exists). Compiled by nvcc as C++20, with warnings as errors under the dev
// and cuda presets.
#include "kernels.hpp"

#include <cuda_runtime.h>
#include <cuda/atomic>

#include <algorithm>
#include <cstdint>
#include <string>

#include <penstock/cuda/cuda_error.hpp>

namespace penstock_test::cuda {
namespace {

using penstock::cuda::cuda_error;

constexpr std::uint64_t gate_patience_ns = 60'000'000'000;  // one minute
constexpr unsigned threads_per_block = 256;

void check(cudaError_t status, const std::string& call) {
  if (status != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    throw cuda_error(static_cast<int>(status), call);
  }
}

// Enough blocks for n threads, at most `most` (grid-stride loops do the rest).
unsigned blocks_for(std::size_t n, std::size_t most) {
  const std::size_t blocks = (n + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(std::clamp<std::size_t>(blocks, 1, most));
}
// Waiting kernels take a few blocks only, so that whatever other streams run
// meanwhile always finds free multiprocessors.
constexpr std::size_t gated_blocks = 8;
constexpr std::size_t max_blocks = 1024;

__device__ std::uint64_t global_time_ns() {
  std::uint64_t now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  return now;
}

// Each block's first thread waits for the gate (a system-scope load of host
// memory); the block then scales its part of `data`, or marks it if the gate
// never opened.
__global__ void gated_scale(int* gate, int* data, std::size_t n, int factor) {
  __shared__ bool opened;
  if (threadIdx.x == 0) {
    const ::cuda::atomic_ref<int, ::cuda::thread_scope_system> flag(*gate);
    const std::uint64_t start = global_time_ns();
    bool open = flag.load(::cuda::memory_order_acquire) != 0;
    while (!open && global_time_ns() - start < gate_patience_ns) {
      __nanosleep(1000);
      open = flag.load(::cuda::memory_order_acquire) != 0;
    }
    opened = open;
  }
  __syncthreads();
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    data[i] = opened ? data[i] * factor : gate_gave_up;
  }
}

__global__ void add(const int* in, int* out, std::size_t n, int addend) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = in[i] + addend;
  }
}

}  // namespace

host_gate::host_gate() {
  check(cudaHostAlloc(reinterpret_cast<void**>(&flag_), sizeof(int), cudaHostAllocMapped),
        "cudaHostAlloc(mapped gate)");
  *flag_ = 0;
  const cudaError_t status = cudaHostGetDevicePointer(reinterpret_cast<void**>(&device_flag_), flag_, 0);
  if (status != cudaSuccess) {
    static_cast<void>(cudaFreeHost(flag_));
    check(status, "cudaHostGetDevicePointer(gate)");
  }
}

host_gate::~host_gate() {
  open();
  static_cast<void>(cudaFreeHost(flag_));
}

void host_gate::open() noexcept {
  ::cuda::atomic_ref<int, ::cuda::thread_scope_system>(*flag_).store(1, ::cuda::memory_order_release);
}

pinned_ints::pinned_ints(std::size_t size) : size_(size) {
  check(cudaMallocHost(reinterpret_cast<void**>(&data_), size * sizeof(int)),
        "cudaMallocHost(" + std::to_string(size * sizeof(int)) + " bytes)");
}

pinned_ints::~pinned_ints() { static_cast<void>(cudaFreeHost(data_)); }

void launch_gated_scale(const host_gate& gate, int* data, std::size_t n, int factor,
                        penstock::cuda::stream_view stream) {
  gated_scale<<<blocks_for(n, gated_blocks), threads_per_block, 0, stream.native_handle()>>>(gate.device_pointer(),
                                                                                             data, n, factor);
  check(cudaGetLastError(), "gated_scale<<<...>>>");
}

void launch_add(const int* in, int* out, std::size_t n, int addend, penstock::cuda::stream_view stream) {
  add<<<blocks_for(n, max_blocks), threads_per_block, 0, stream.native_handle()>>>(in, out, n, addend);
  check(cudaGetLastError(), "add<<<...>>>");
}

}  // namespace penstock_test::cuda
