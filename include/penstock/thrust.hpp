// ps::thrust_policy(ctx): the Thrust execution policy for a GPU step's
// algorithms, chosen by the backend this translation unit is compiled for:
//   nvcc (THRUST_DEVICE_SYSTEM_CUDA)   thrust::cuda::par_nosync on ctx.stream():
//                                      asynchronous, no host synchronization;
//   g++ with penstock::thrust_tbb      thrust::tbb::par: the same algorithms
//   (THRUST_DEVICE_SYSTEM_TBB)         on the host, on oneTBB.
// Either way it first checks that the run's backend is the one the code was
// compiled for (gpu_context::require), so CUDA code in a run without a device
// fails with a clear message, or runs the step's .fallback.
// PENSTOCK_HOST_DEVICE marks functors for both compilers.
#pragma once

#include <thrust/execution_policy.h>

#include <penstock/gpu_context.hpp>

#if defined(__CUDACC__)
#define PENSTOCK_HOST_DEVICE __host__ __device__
#else
#define PENSTOCK_HOST_DEVICE
#endif

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#include <thrust/system/cuda/execution_policy.h>
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_TBB
#include <thrust/system/tbb/execution_policy.h>
#else
#error \
    "penstock/thrust.hpp: compile with nvcc (CUDA) or with THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_TBB (link penstock::thrust_tbb)"
#endif

namespace penstock {

// One inline namespace per backend, so a CUDA and a TBB translation unit in
// one program each have their own thrust_policy (no ODR clash).
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
inline namespace thrust_cuda_backend {
inline auto thrust_policy(gpu_context& ctx) {
  ctx.require(gpu_backend::cuda, "CUDA (nvcc)");
  return thrust::cuda::par_nosync.on(ctx.stream());
}
}  // namespace thrust_cuda_backend
#else
namespace detail::r1 {
// Makes host the default GPU backend of this program's runs (gpu_runtime.cpp).
void register_host_gpu_code() noexcept;
}  // namespace detail::r1

inline namespace thrust_tbb_backend {
// A program that links step code compiled for the TBB backend runs its GPU
// steps on the host unless told otherwise (--gpu cuda): its code cannot read
// CUDA device memory, even on a machine with a GPU.
inline const bool host_gpu_code_registered = (detail::r1::register_host_gpu_code(), true);

inline auto thrust_policy(gpu_context& ctx) {
  ctx.require(gpu_backend::host, "Thrust's TBB backend (host memory)");
  return thrust::tbb::par;
}
}  // namespace thrust_tbb_backend
#endif

}  // namespace penstock
