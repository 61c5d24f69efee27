// ps::gpu_context: what a GPU step (`.on(ps::gpu)`) receives as its first
// parameter: the stream its work goes on, the device, and the memory resource
// its ps::device_vector outputs are allocated from. The same step code runs on
// either backend of a run:
//   gpu_backend::cuda  a CUDA device: a stream from the run's pool, device
//                      memory allocated in stream order (cudaMallocAsync);
//   gpu_backend::host  no device (CI, laptops): device memory is host memory
//                      and Thrust runs on oneTBB (<penstock/thrust.hpp>).
// Small and free of CUDA's, Hana's and cereal's headers, so a .cu file that
// includes it stays quick to compile with nvcc; valid C++17.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>

#include <penstock/context.hpp>

// cudaStream_t is CUstream_st* (CUDA's driver_types.h).
struct CUstream_st;

namespace penstock {

enum class gpu_backend : unsigned char {
  host,  // no CUDA device in this run: host memory, Thrust on oneTBB
  cuda,  // a CUDA device: streams, events, stream-ordered device memory
};

[[nodiscard]] constexpr std::string_view to_string(gpu_backend b) noexcept {
  return b == gpu_backend::cuda ? "cuda" : "host";
}

// Thrown when a GPU step's code needs a backend the run does not have: code
// compiled for CUDA in a run without a device (the step's .fallback runs
// instead, where it has one), or code compiled for Thrust's TBB backend given
// CUDA device memory.
class gpu_unavailable_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the values of ps::device_vector live, and how bytes get there and
// back. The run provides one per backend; steps reach it through
// gpu_context::memory().
class gpu_memory_resource {
 public:
  [[nodiscard]] virtual gpu_backend backend() const noexcept = 0;
  // `bytes` bytes, usable by work enqueued on `stream` after this call (and
  // at once by the host on the host backend). Throws std::bad_alloc or
  // ps::cuda::cuda_error.
  virtual void* allocate(std::size_t bytes, CUstream_st* stream) = 0;
  // Frees in order on `stream`: work enqueued on it before still sees it.
  virtual void deallocate(void* p, std::size_t bytes, CUstream_st* stream) noexcept = 0;
  // Enqueues a copy of `bytes` from host memory at `source` into this
  // resource's memory at `destination`, on `stream`. Returns once `source`
  // may be reused (it is staged through pinned memory on CUDA).
  virtual void copy_from_host(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) = 0;
  // Copies `bytes` of this resource's memory at `source` to host memory at
  // `destination`, after the work enqueued on `stream` so far; the bytes are
  // there when it returns (on CUDA the calling thread waits for `stream`).
  virtual void copy_to_host(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) = 0;
  // Enqueues a copy of `bytes` within this resource's memory, on `stream`.
  virtual void copy_within(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) = 0;

 protected:
  gpu_memory_resource() = default;
  gpu_memory_resource(const gpu_memory_resource&) = default;
  gpu_memory_resource& operator=(const gpu_memory_resource&) = default;
  ~gpu_memory_resource() = default;
};

namespace detail {
// The host backend's memory: aligned like cudaMalloc's (256 bytes), so code
// that vectorizes over device_vector data finds the same alignment on both.
class host_gpu_memory final : public gpu_memory_resource {
 public:
  static constexpr std::size_t alignment = 256;
  [[nodiscard]] gpu_backend backend() const noexcept override { return gpu_backend::host; }
  void* allocate(std::size_t bytes, CUstream_st*) override {
    return bytes == 0 ? nullptr : ::operator new (bytes, std::align_val_t{alignment});
  }
  void deallocate(void* p, std::size_t, CUstream_st*) noexcept override {
    if (p != nullptr) ::operator delete (p, std::align_val_t{alignment});
  }
  void copy_from_host(void* destination, const void* source, std::size_t bytes, CUstream_st*) override {
    if (bytes != 0) std::memcpy(destination, source, bytes);
  }
  void copy_to_host(void* destination, const void* source, std::size_t bytes, CUstream_st*) override {
    if (bytes != 0) std::memcpy(destination, source, bytes);
  }
  void copy_within(void* destination, const void* source, std::size_t bytes, CUstream_st*) override {
    if (bytes != 0) std::memcpy(destination, source, bytes);
  }
};
}  // namespace detail

// The host backend's memory resource (one per process). Values read from the
// cache live here until a CUDA step needs them on its device.
inline gpu_memory_resource& host_memory_resource() noexcept {
  static detail::host_gpu_memory resource;
  return resource;
}

class gpu_context {
 public:
  // Made by the runtime for each run of a GPU step. `why_no_device` says why
  // the run has no CUDA device (host backend), for the errors below.
  gpu_context(context& step, gpu_backend backend, int device, CUstream_st* stream, gpu_memory_resource& memory,
              std::string_view why_no_device = {}) noexcept
      : step_(&step),
        backend_(backend),
        device_(device),
        stream_(stream),
        memory_(&memory),
        why_no_device_(why_no_device) {}

  // The step's ordinary context: its name, log and stop requests.
  [[nodiscard]] context& step() const noexcept { return *step_; }
  [[nodiscard]] std::string_view step_name() const noexcept { return step_->step_name(); }
  void log(std::string_view message) const { step_->log(message); }

  [[nodiscard]] gpu_backend backend() const noexcept { return backend_; }
  // The CUDA device's index; -1 on the host backend.
  [[nodiscard]] int device() const noexcept { return device_; }
  [[nodiscard]] gpu_memory_resource& memory() const noexcept { return *memory_; }

  // The cudaStream_t to launch this step's kernels on. Work on it is ordered
  // after the step's GPU inputs; never synchronize it (the runtime records
  // its completion). Throws gpu_unavailable_error on the host backend.
  [[nodiscard]] CUstream_st* stream() const {
    require(gpu_backend::cuda, "CUDA");
    return stream_;
  }
  // Why this run has no CUDA device ("" on CUDA).
  [[nodiscard]] std::string_view why_no_device() const noexcept { return why_no_device_; }

  // The stream, or null on the host backend; for the library's own use.
  [[nodiscard]] CUstream_st* stream_or_null() const noexcept { return stream_; }

  // Throws gpu_unavailable_error, naming the step, unless this run's backend
  // is `needed`; `compiled_for` says what the step's code was built for.
  void require(gpu_backend needed, std::string_view compiled_for) const {
    if (backend_ == needed) return;
    std::string message = "step '";
    message.append(step_name()).append("' runs code compiled for ").append(compiled_for);
    if (needed == gpu_backend::cuda) {
      message.append(", but this run has no CUDA device");
      if (!why_no_device_.empty()) message.append(" (").append(why_no_device_).append(")");
      message.append(
          "; give the step a .fallback(cpu_fn), or build its code for Thrust's TBB backend "
          "(penstock::thrust_tbb)");
    } else {
      message.append(
          ", which reads host memory, but this run keeps GPU values in CUDA device memory; compile the step "
          "with nvcc, or run with --gpu host");
    }
    throw gpu_unavailable_error(message);
  }

 private:
  context* step_;
  gpu_backend backend_;
  int device_;
  CUstream_st* stream_;
  gpu_memory_resource* memory_;
  std::string_view why_no_device_;
};

}  // namespace penstock
