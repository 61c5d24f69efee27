// ps::cuda::stream_view: a non-owning handle to a CUDA stream and the device it
// belongs to, as stream_pool::acquire() hands them out. native_handle() is the
// cudaStream_t to launch kernels on and to give CUDA libraries.
#pragma once

// cudaStream_t is CUstream_st* (CUDA's driver_types.h); declaring the struct
// here keeps CUDA's headers out of this one.
struct CUstream_st;

namespace penstock::cuda {

class event;

class stream_view {
 public:
  // A null handle is the device's legacy default stream, which synchronizes
  // with every blocking stream of the device; penstock's own streams never
  // are that one.
  stream_view(CUstream_st* handle, int device) noexcept : handle_(handle), device_(device) {}

  // The cudaStream_t.
  [[nodiscard]] CUstream_st* native_handle() const noexcept { return handle_; }
  [[nodiscard]] int device() const noexcept { return device_; }

  // Work enqueued on this stream after this call starts only once the work
  // captured by `done` (its last record()) has finished, on any stream of any
  // device. The host does not wait (cudaStreamWaitEvent): this is how one GPU
  // step waits for another.
  void wait(const event& done) const;

  // True when everything enqueued so far has finished (cudaStreamQuery).
  [[nodiscard]] bool ready() const;

  // Blocks the calling thread until everything enqueued so far has finished
  // (cudaStreamSynchronize). For tests and shutdown, not for a run loop.
  void synchronize() const;

  friend bool operator==(const stream_view& a, const stream_view& b) noexcept {
    return a.handle_ == b.handle_ && a.device_ == b.device_;
  }
  friend bool operator!=(const stream_view& a, const stream_view& b) noexcept { return !(a == b); }

 private:
  CUstream_st* handle_;
  int device_;
};

}  // namespace penstock::cuda
