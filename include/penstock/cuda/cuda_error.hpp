// ps::cuda::cuda_error: what a failed CUDA runtime call in penstock::cuda
// throws. The message names the call, with the device or size involved, and
// CUDA's own description of the error:
//   cudaMallocAsync(4096 bytes, device 0) failed: out of memory (cudaErrorMemoryAllocation)
// Like every header in penstock/cuda/, it includes no CUDA header and is valid
// C++17, so a .cu file includes it cheaply.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string_view>

namespace penstock::cuda {

class cuda_error : public std::runtime_error {
 public:
  // `code` is the cudaError_t the call returned (an int here, so that this
  // header needs no CUDA header); `call` names the call and its arguments.
  cuda_error(int code, std::string_view call);

  // The cudaError_t value.
  [[nodiscard]] int code() const noexcept { return code_; }
  // The call as given to the constructor (the start of what()).
  [[nodiscard]] std::string_view call() const noexcept { return {what(), call_size_}; }

 private:
  int code_;
  std::size_t call_size_;
};

}  // namespace penstock::cuda
