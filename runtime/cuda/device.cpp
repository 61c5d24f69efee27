// Device discovery: how many devices, why none, and what each one is.
#include <penstock/cuda/device.hpp>

#include <stdexcept>
#include <string>

#include "cuda_call.hpp"

namespace penstock::cuda {
namespace {

struct discovery {
  int count = 0;
  cudaError_t status = cudaSuccess;  // why count is 0, when it is
};

// The failures that mean "this machine has no usable GPU": none installed or
// visible (CUDA_VISIBLE_DEVICES), no driver, or the toolkit's stub libcuda.so
// in place of a driver. Anything else is a broken setup and is thrown.
bool means_no_device(cudaError_t status) {
  return status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver || status == cudaErrorStubLibrary;
}

discovery discover() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaSuccess) {
    return {count, status};
  }
  if (means_no_device(status)) {
    static_cast<void>(cudaGetLastError());
    return {0, status};
  }
  detail::check(status, "cudaGetDeviceCount");
  return {};
}

std::string reason(const discovery& found) {
  if (found.count > 0) {
    return {};
  }
  if (found.status == cudaSuccess) {
    return "no CUDA device: cudaGetDeviceCount found none";
  }
  return std::string("no CUDA device: ") + cudaGetErrorString(found.status);
}

}  // namespace

int device_count() { return discover().count; }

std::string no_device_reason() { return reason(discover()); }

device_properties device_info(int index) {
  const discovery found = discover();
  const std::string call = "device_info(" + std::to_string(index) + ")";
  if (found.count == 0) {
    throw std::out_of_range(call + ": " + reason(found));
  }
  if (index < 0 || index >= found.count) {
    throw std::out_of_range(call + ": this process sees " + std::to_string(found.count) + " CUDA device" +
                            (found.count == 1 ? "" : "s") + ", 0 to " + std::to_string(found.count - 1));
  }
  cudaDeviceProp properties{};
  detail::check(cudaGetDeviceProperties(&properties, index), detail::on_device("cudaGetDeviceProperties", index));
  int pools = 0;
  detail::check(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, index),
                detail::on_device("cudaDeviceGetAttribute(cudaDevAttrMemoryPoolsSupported)", index));

  device_properties result;
  result.index = index;
  result.name = properties.name;
  result.compute_capability_major = properties.major;
  result.compute_capability_minor = properties.minor;
  result.total_memory = properties.totalGlobalMem;
  result.multiprocessor_count = properties.multiProcessorCount;
  result.memory_pools_supported = pools != 0;
  result.driver_version = driver_version();
  result.runtime_version = runtime_version();
  return result;
}

int driver_version() {
  int version = 0;
  detail::check(cudaDriverGetVersion(&version), "cudaDriverGetVersion");  // 0, not an error, without a driver
  return version;
}

int runtime_version() {
  int version = 0;
  detail::check(cudaRuntimeGetVersion(&version), "cudaRuntimeGetVersion");
  return version;
}

}  // namespace penstock::cuda
