// stream_view's calls into CUDA: wait for an event, query, synchronize.
#include <penstock/cuda/stream.hpp>

#include <type_traits>

#include <penstock/cuda/event.hpp>

#include "cuda_call.hpp"

// The public headers name CUDA's handle types without CUDA's headers.
static_assert(std::is_same_v<cudaStream_t, CUstream_st*>, "cudaStream_t is no longer CUstream_st*");
static_assert(std::is_same_v<cudaEvent_t, CUevent_st*>, "cudaEvent_t is no longer CUevent_st*");

namespace penstock::cuda {

void stream_view::wait(const event& done) const {
  detail::check(cudaStreamWaitEvent(handle_, done.native_handle(), cudaEventWaitDefault),
                detail::on_device("cudaStreamWaitEvent", device_));
}

bool stream_view::ready() const {
  const cudaError_t status = cudaStreamQuery(handle_);
  if (status == cudaErrorNotReady) {
    static_cast<void>(cudaGetLastError());
    return false;
  }
  detail::check(status, detail::on_device("cudaStreamQuery", device_));
  return true;
}

void stream_view::synchronize() const {
  detail::check(cudaStreamSynchronize(handle_), detail::on_device("cudaStreamSynchronize", device_));
}

}  // namespace penstock::cuda
