// cuda_error's message, and the helpers every source of penstock::cuda uses
// to call CUDA (cuda_call.hpp).
#include <penstock/cuda/cuda_error.hpp>

#include <cstdio>
#include <string>

#include "cuda_call.hpp"

namespace penstock::cuda {
namespace {

std::string describe(int code, std::string_view call) {
  const auto status = static_cast<cudaError_t>(code);
  std::string message(call);
  message += " failed: ";
  message += cudaGetErrorString(status);
  message += " (";
  message += cudaGetErrorName(status);
  message += ")";
  return message;
}

}  // namespace

cuda_error::cuda_error(int code, std::string_view call)
    : std::runtime_error(describe(code, call)), code_(code), call_size_(call.size()) {}

namespace detail {

void report_cleanup_failure(cudaError_t status, std::string_view call) noexcept {
  if (status == cudaSuccess || status == cudaErrorCudartUnloading) {
    return;
  }
  static_cast<void>(cudaGetLastError());
  std::fprintf(stderr, "penstock: %.*s failed while releasing GPU resources: %s (%s)\n", static_cast<int>(call.size()),
               call.data(), cudaGetErrorString(status), cudaGetErrorName(status));
}

device_guard::device_guard(int device) : device_(device) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device_) {
    check(cudaSetDevice(device_), "cudaSetDevice(" + std::to_string(device_) + ")");
  }
}

device_guard::~device_guard() {
  if (previous_ != device_) {
    report_cleanup_failure(cudaSetDevice(previous_), "cudaSetDevice (restoring the previous device)");
  }
}

}  // namespace detail
}  // namespace penstock::cuda
