// The untyped, stream-ordered allocation behind device_buffer<T>.
#include <penstock/cuda/device_buffer.hpp>

#include <stdexcept>
#include <string>
#include <utility>

#include "cuda_call.hpp"

namespace penstock::cuda::detail {
namespace {

std::string sized(std::string_view call, std::size_t bytes, int device) {
  return std::string(call) + "(" + std::to_string(bytes) + " bytes, device " + std::to_string(device) + ")";
}

}  // namespace

device_allocation::device_allocation(std::size_t bytes, stream_view stream) : stream_(stream) {
  if (bytes == 0) {
    return;
  }
  check(cudaMallocAsync(&data_, bytes, stream.native_handle()), sized("cudaMallocAsync", bytes, stream.device()));
  bytes_ = bytes;
}

device_allocation::~device_allocation() {
  if (data_ != nullptr) {
    report_cleanup_failure(cudaFreeAsync(data_, stream_.native_handle()),
                           sized("cudaFreeAsync", bytes_, stream_.device()));
  }
}

device_allocation::device_allocation(device_allocation&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)), stream_(other.stream_) {}

device_allocation& device_allocation::operator=(device_allocation&& other) noexcept {
  device_allocation old(std::move(*this));
  data_ = std::exchange(other.data_, nullptr);
  bytes_ = std::exchange(other.bytes_, 0);
  stream_ = other.stream_;
  return *this;
}

void device_allocation::copy_from_host(const void* source, std::size_t bytes, stream_view stream) {
  if (bytes == 0) {
    return;
  }
  check(cudaMemcpyAsync(data_, source, bytes, cudaMemcpyHostToDevice, stream.native_handle()),
        sized("cudaMemcpyAsync host to device", bytes, stream.device()));
}

void device_allocation::copy_to_host(void* destination, std::size_t bytes, stream_view stream) const {
  if (bytes == 0) {
    return;
  }
  check(cudaMemcpyAsync(destination, data_, bytes, cudaMemcpyDeviceToHost, stream.native_handle()),
        sized("cudaMemcpyAsync device to host", bytes, stream.device()));
}

}  // namespace penstock::cuda::detail
