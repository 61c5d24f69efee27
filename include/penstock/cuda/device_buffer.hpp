// ps::cuda::device_buffer<T>: `size()` values of T in device memory, allocated
// and freed in stream order (cudaMallocAsync / cudaFreeAsync on the buffer's
// stream), with asynchronous copies from and to host memory. Move-only.
#pragma once

#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <penstock/cuda/stream.hpp>

namespace penstock::cuda {

namespace detail {

// The untyped allocation behind device_buffer<T>, compiled in penstock::cuda.
class device_allocation {
 public:
  // cudaMallocAsync on `stream` (from its device's default memory pool); no
  // call for 0 bytes. Throws cuda_error.
  device_allocation(std::size_t bytes, stream_view stream);
  // cudaFreeAsync on stream(). A failure cannot be thrown from here; it is
  // written to stderr.
  ~device_allocation();
  device_allocation(device_allocation&& other) noexcept;
  device_allocation& operator=(device_allocation&& other) noexcept;
  device_allocation(const device_allocation&) = delete;
  device_allocation& operator=(const device_allocation&) = delete;

  [[nodiscard]] void* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size_bytes() const noexcept { return bytes_; }
  [[nodiscard]] stream_view stream() const noexcept { return stream_; }
  void set_stream(stream_view stream) noexcept { stream_ = stream; }

  // cudaMemcpyAsync of `bytes` (at most size_bytes()) on `stream`; no call
  // for 0 bytes. Throws cuda_error.
  void copy_from_host(const void* source, std::size_t bytes, stream_view stream);
  void copy_to_host(void* destination, std::size_t bytes, stream_view stream) const;

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  stream_view stream_;
};

}  // namespace detail

template <class T>
class device_buffer {
  static_assert(std::is_trivially_copyable_v<T>,
                "device_buffer<T> copies T as bytes between host and device: T must be trivially copyable");

 public:
  using value_type = T;

  // `count` values of T, uninitialized, allocated in order on `stream`: work
  // enqueued on `stream` after this may use them at once; work on another
  // stream must first wait for an event recorded on `stream`. Allocates
  // nothing for 0. Throws cuda_error, or std::length_error when count *
  // sizeof(T) overflows.
  device_buffer(std::size_t count, stream_view stream) : allocation_(bytes_for(count), stream) {}

  // Moving leaves the source empty (size() 0, data() null).
  device_buffer(device_buffer&&) noexcept = default;
  device_buffer& operator=(device_buffer&&) noexcept = default;
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  // Frees the memory in order on stream() (cudaFreeAsync): work enqueued on
  // stream() before the destructor still sees it. Work on other streams that
  // uses the buffer must be ordered before that point (an event that stream()
  // waits for), or call set_stream().
  ~device_buffer() = default;

  // The device pointer, for kernels and CUDA libraries; null when empty.
  [[nodiscard]] T* data() noexcept { return static_cast<T*>(allocation_.data()); }
  [[nodiscard]] const T* data() const noexcept { return static_cast<const T*>(allocation_.data()); }
  [[nodiscard]] std::size_t size() const noexcept { return allocation_.size_bytes() / sizeof(T); }
  [[nodiscard]] std::size_t size_bytes() const noexcept { return allocation_.size_bytes(); }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }

  // The stream the memory is freed on: the one it was allocated on, unless
  // set_stream() moved it (for a buffer whose last user is another stream).
  [[nodiscard]] stream_view stream() const noexcept { return allocation_.stream(); }
  void set_stream(stream_view stream) noexcept { allocation_.set_stream(stream); }

  // Enqueues a copy of `count` values from host memory at `source` into the
  // first `count` elements, on `stream` (cudaMemcpyAsync). From pageable
  // memory the call returns once `source` has been staged; from pinned memory
  // (cudaMallocHost, cudaHostRegister) at once, and `source` must stay
  // untouched until the copy has run. Throws std::out_of_range when count >
  // size(), cuda_error when CUDA refuses the copy.
  void copy_from_host(const T* source, std::size_t count, stream_view stream) {
    allocation_.copy_from_host(source, checked_bytes(count, "copy_from_host"), stream);
  }

  // Enqueues a copy of the first `count` elements to host memory at
  // `destination`, on `stream`. Into pinned memory the call returns at once
  // and `destination` holds the values once the stream has reached the copy
  // (an event, or stream.synchronize()); into pageable memory CUDA completes
  // the copy before returning. Throws as copy_from_host().
  void copy_to_host(T* destination, std::size_t count, stream_view stream) const {
    allocation_.copy_to_host(destination, checked_bytes(count, "copy_to_host"), stream);
  }

 private:
  static std::size_t bytes_for(std::size_t count) {
    if (count > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
      throw std::length_error("device_buffer: " + std::to_string(count) + " elements of " + std::to_string(sizeof(T)) +
                              " bytes do not fit in size_t");
    }
    return count * sizeof(T);
  }
  std::size_t checked_bytes(std::size_t count, const char* what) const {
    if (count > size()) {
      throw std::out_of_range(std::string("device_buffer::") + what + ": " + std::to_string(count) +
                              " elements requested, the buffer holds " + std::to_string(size()));
    }
    return count * sizeof(T);
  }

  detail::device_allocation allocation_;
};

}  // namespace penstock::cuda
