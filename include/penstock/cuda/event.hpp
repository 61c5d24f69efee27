// ps::cuda::event: an owned CUDA event, the completion of a GPU step. record()
// it on the stream that did the work; a stream that must come after it calls
// stream_view::wait(event), so that GPU steps are ordered without the host
// waiting; query() tells the host whether the work is done.
#pragma once

#include <penstock/cuda/stream.hpp>

// cudaEvent_t is CUevent_st* (CUDA's driver_types.h).
struct CUevent_st;

namespace penstock::cuda {

class event {
 public:
  // Creates the event on `device` (cudaEventCreateWithFlags with
  // cudaEventDisableTiming: ordering only, no timestamps, the cheap kind).
  // Throws cuda_error.
  explicit event(int device);
  ~event();
  event(event&& other) noexcept;
  event& operator=(event&& other) noexcept;
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  // Captures the work enqueued on `stream` so far; query(), synchronize() and
  // stream_view::wait() then refer to that work (cudaEventRecord). The stream
  // must be on the event's device (std::invalid_argument otherwise).
  void record(stream_view stream);

  // True when the captured work has finished, or when nothing was recorded
  // (cudaEventQuery); does not block.
  [[nodiscard]] bool query() const;

  // Blocks the calling thread until the captured work has finished
  // (cudaEventSynchronize).
  void synchronize() const;

  // The cudaEvent_t; null once moved from.
  [[nodiscard]] CUevent_st* native_handle() const noexcept { return handle_; }
  [[nodiscard]] int device() const noexcept { return device_; }

 private:
  CUevent_st* handle_ = nullptr;
  int device_ = 0;
};

}  // namespace penstock::cuda
