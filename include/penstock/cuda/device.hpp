// Which CUDA devices this process can use: device_count(), why there is none
// (no_device_reason()), and what each one is (device_info()). A machine
// without a GPU or without a driver (CI) is a reported absence here, not an
// error: device_count() is 0 and no_device_reason() says why.
#pragma once

#include <cstddef>
#include <string>

namespace penstock::cuda {

struct device_properties {
  int index = 0;                     // as device_info() was asked for it
  std::string name;                  // "NVIDIA H100 80GB HBM3"
  int compute_capability_major = 0;  // 9 and 0 for sm_90
  int compute_capability_minor = 0;
  std::size_t total_memory = 0;  // bytes of device memory
  int multiprocessor_count = 0;
  // Stream-ordered allocation (cudaMallocAsync) works on it; device_buffer
  // needs it.
  bool memory_pools_supported = false;
  // CUDA versions as 1000 * major + 10 * minor (13000 for 13.0): the newest
  // the driver supports, and that of the runtime penstock::cuda was linked with.
  int driver_version = 0;
  int runtime_version = 0;
};

// The number of CUDA devices this process can use. 0, without throwing, when
// there is no device, no driver, or only the driver's stub library; throws
// cuda_error for any other failure of cudaGetDeviceCount.
[[nodiscard]] int device_count();

// Why device_count() is 0, as "no CUDA device: <CUDA's description>" (for
// example "no CUDA device: CUDA driver version is insufficient for CUDA
// runtime version" where the runtime finds no driver); "" when there is a
// device. GPU tests skip with this as their reason.
[[nodiscard]] std::string no_device_reason();

// Device `index` (0 to device_count() - 1). Throws std::out_of_range for any
// other index, saying how many devices there are or, when there is none, why;
// cuda_error if CUDA cannot describe the device.
[[nodiscard]] device_properties device_info(int index);

// The CUDA version the installed driver supports; 0 when there is no driver.
[[nodiscard]] int driver_version();
// The version of the CUDA runtime penstock::cuda was linked with.
[[nodiscard]] int runtime_version();

}  // namespace penstock::cuda
