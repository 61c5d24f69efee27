// ps::device_vector<T>: the values a GPU step passes to the next one, in the
// memory of the run's GPU backend (CUDA device memory, or host memory on the
// host backend), allocated and freed in stream order. Move-only: a GPU value
// is never copied behind the step's back. Its data() is a device pointer on
// CUDA: give it to kernels, to Thrust with ps::thrust_policy(ctx), to CUB.
// Free of CUDA's headers; valid C++17.
#pragma once

#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <penstock/gpu_context.hpp>

namespace penstock {

template <class T>
class device_vector {
  static_assert(std::is_trivially_copyable_v<T>,
                "ps::device_vector<T> copies T as bytes between host and device: T must be trivially copyable");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using const_iterator = const T*;

  device_vector() noexcept = default;

  // `count` uninitialized values for the step that `ctx` belongs to, on its
  // stream: its kernels may use them at once.
  device_vector(std::size_t count, gpu_context& ctx) : device_vector(count, ctx.memory(), ctx.stream_or_null()) {}

  // `count` uninitialized values from `memory`, ordered on `stream`.
  device_vector(std::size_t count, gpu_memory_resource& memory, CUstream_st* stream)
      : memory_(&memory), stream_(stream), size_(count) {
    if (count > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
      throw std::length_error("ps::device_vector: " + std::to_string(count) + " elements do not fit in size_t");
    }
    data_ = static_cast<T*>(memory.allocate(count * sizeof(T), stream));
  }

  // A copy of `count` host values at `source`, enqueued on ctx's stream.
  static device_vector from_host(const T* source, std::size_t count, gpu_context& ctx) {
    return from_host(source, count, ctx.memory(), ctx.stream_or_null());
  }
  static device_vector from_host(const T* source, std::size_t count, gpu_memory_resource& memory, CUstream_st* stream) {
    device_vector v(count, memory, stream);
    memory.copy_from_host(v.data_, source, count * sizeof(T), stream);
    return v;
  }
  template <class A>
  static device_vector from_host(const std::vector<T, A>& source, gpu_context& ctx) {
    return from_host(source.data(), source.size(), ctx);
  }

  device_vector(device_vector&& other) noexcept
      : memory_(std::exchange(other.memory_, nullptr)),
        stream_(other.stream_),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  device_vector& operator=(device_vector&& other) noexcept {
    if (this != &other) {
      release();
      memory_ = std::exchange(other.memory_, nullptr);
      stream_ = other.stream_;
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  device_vector(const device_vector&) = delete;
  device_vector& operator=(const device_vector&) = delete;
  ~device_vector() { release(); }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  // Pointers into the memory (device pointers on CUDA), for Thrust and CUB.
  [[nodiscard]] T* begin() noexcept { return data_; }
  [[nodiscard]] T* end() noexcept { return data_ + size_; }
  [[nodiscard]] const T* begin() const noexcept { return data_; }
  [[nodiscard]] const T* end() const noexcept { return data_ + size_; }

  // The resource the values live in (null when empty and never allocated),
  // and the stream they are freed on.
  [[nodiscard]] gpu_memory_resource* memory_resource() const noexcept { return memory_; }
  [[nodiscard]] CUstream_st* stream() const noexcept { return stream_; }
  // Frees on `stream` instead: for a value whose last user is another stream.
  void set_stream(CUstream_st* stream) noexcept { stream_ = stream; }
  // True when the values are in host memory (host backend, or read from the
  // cache and not yet uploaded).
  [[nodiscard]] bool on_host() const noexcept { return memory_ == nullptr || memory_->backend() == gpu_backend::host; }

  // The values, copied to the host after the work enqueued on stream() so
  // far (the calling thread waits for it on CUDA).
  [[nodiscard]] std::vector<T> to_host() const {
    std::vector<T> out(size_);
    if (size_ != 0) memory_->copy_to_host(out.data(), data_, size_bytes(), stream_);
    return out;
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) memory_->deallocate(data_, size_bytes(), stream_);
    data_ = nullptr;
    size_ = 0;
  }

  gpu_memory_resource* memory_ = nullptr;
  CUstream_st* stream_ = nullptr;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace penstock
