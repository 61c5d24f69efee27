// Private to penstock::cuda: turning CUDA runtime status codes into
// cuda_error, reporting failures where nothing can be thrown, and making a
// device current for the length of a scope.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <string_view>

#include <penstock/cuda/cuda_error.hpp>

namespace penstock::cuda::detail {

// Throws cuda_error(status, call) unless `status` is cudaSuccess. The failed
// call's error is also CUDA's "last error"; it is cleared so that a later,
// unrelated cudaGetLastError() (after a kernel launch) does not report it.
inline void check(cudaError_t status, std::string_view call) {
  if (status != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    throw cuda_error(static_cast<int>(status), call);
  }
}

// For destructors: writes the failure to stderr. Stays quiet when the CUDA
// runtime is already being unloaded at process exit, which releases
// everything anyway.
void report_cleanup_failure(cudaError_t status, std::string_view call) noexcept;

// Makes `device` current for the calling thread for the guard's lifetime,
// then restores the previous one (CUDA's current device is per thread, and
// the thread belongs to whoever called penstock).
class device_guard {
 public:
  explicit device_guard(int device);
  ~device_guard();
  device_guard(const device_guard&) = delete;
  device_guard& operator=(const device_guard&) = delete;

 private:
  int previous_ = 0;
  int device_;
};

// "cudaStreamCreateWithFlags(device 0)"
inline std::string on_device(std::string_view call, int device) {
  return std::string(call) + "(device " + std::to_string(device) + ")";
}

}  // namespace penstock::cuda::detail
