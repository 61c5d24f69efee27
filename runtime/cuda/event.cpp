// event: an owned cudaEvent_t without timing, recorded on a stream and waited
// for by other streams or polled by the host.
#include <penstock/cuda/event.hpp>

#include <stdexcept>
#include <string>
#include <utility>

#include "cuda_call.hpp"

namespace penstock::cuda {

event::event(int device) : device_(device) {
  const detail::device_guard current(device);
  detail::check(cudaEventCreateWithFlags(&handle_, cudaEventDisableTiming),
                detail::on_device("cudaEventCreateWithFlags", device));
}

event::~event() {
  if (handle_ != nullptr) {
    detail::report_cleanup_failure(cudaEventDestroy(handle_), detail::on_device("cudaEventDestroy", device_));
  }
}

event::event(event&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)), device_(other.device_) {}

event& event::operator=(event&& other) noexcept {
  event old(std::move(*this));
  handle_ = std::exchange(other.handle_, nullptr);
  device_ = other.device_;
  return *this;
}

void event::record(stream_view stream) {
  if (stream.device() != device_) {
    throw std::invalid_argument("event::record: the event belongs to device " + std::to_string(device_) +
                                ", the stream to device " + std::to_string(stream.device()));
  }
  detail::check(cudaEventRecord(handle_, stream.native_handle()), detail::on_device("cudaEventRecord", device_));
}

bool event::query() const {
  const cudaError_t status = cudaEventQuery(handle_);
  if (status == cudaErrorNotReady) {
    static_cast<void>(cudaGetLastError());
    return false;
  }
  detail::check(status, detail::on_device("cudaEventQuery", device_));
  return true;
}

void event::synchronize() const {
  detail::check(cudaEventSynchronize(handle_), detail::on_device("cudaEventSynchronize", device_));
}

}  // namespace penstock::cuda
