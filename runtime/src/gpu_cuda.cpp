// The CUDA backend of GPU steps: a stream pool on device 0, an event per GPU
// step, host callbacks that wake CPU work, stream-ordered device memory and
// pinned staging buffers for copies. Built only with PENSTOCK_CUDA.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <penstock/cuda/cuda_error.hpp>
#include <penstock/cuda/device.hpp>
#include <penstock/cuda/event.hpp>
#include <penstock/cuda/stream_pool.hpp>

#include "../cuda/cuda_call.hpp"
#include "gpu_runtime.hpp"

namespace penstock::detail::r1 {

namespace {

using penstock::cuda::detail::check;

// Set by cuda_gpu_runtime::copy_completed_values for the calling thread.
thread_local cudaStream_t completed_copy_stream = nullptr;

// Pinned host buffers that copies between host and device go through, each
// reused once the copy that last used it has run (its event says so), so a
// copy from host memory returns without waiting for the device.
class staging_pool {
 public:
  struct buffer {
    buffer(std::size_t bytes, int device) : size(bytes), done(device) {
      check(cudaMallocHost(&data, size), "cudaMallocHost");
    }
    buffer(const buffer&) = delete;
    buffer& operator=(const buffer&) = delete;
    ~buffer() {
      // A copy may still use it.
      try {
        done.synchronize();
      } catch (const penstock::cuda::cuda_error& e) {
        penstock::cuda::detail::report_cleanup_failure(static_cast<cudaError_t>(e.code()), "cudaEventSynchronize");
      }
      penstock::cuda::detail::report_cleanup_failure(cudaFreeHost(data), "cudaFreeHost");
    }
    void* data = nullptr;
    std::size_t size;
    penstock::cuda::event done;
    bool taken = true;
  };

  explicit staging_pool(int device) : device_(device) {}

  // A pinned buffer of at least `bytes` bytes that no copy still uses.
  buffer& acquire(std::size_t bytes) {
    const std::scoped_lock lock(mutex_);
    for (auto& b : buffers_) {
      if (!b.taken && b.size >= bytes && b.done.query()) {
        b.taken = true;
        return b;
      }
    }
    return buffers_.emplace_back(std::max<std::size_t>(bytes, std::size_t{1} << 20), device_);
  }

  // Gives `b` back, free again once the work enqueued on `stream` so far has run.
  void release_after(buffer& b, cudaStream_t stream) {
    b.done.record(penstock::cuda::stream_view(stream, device_));
    const std::scoped_lock lock(mutex_);
    b.taken = false;
  }

 private:
  int device_;
  std::mutex mutex_;
  std::deque<buffer> buffers_;  // stable addresses
};

class cuda_memory final : public gpu_memory_resource {
 public:
  explicit cuda_memory(int device) : staging_(device) {}

  [[nodiscard]] gpu_backend backend() const noexcept override { return gpu_backend::cuda; }

  void* allocate(std::size_t bytes, CUstream_st* stream) override {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    check(cudaMallocAsync(&p, bytes, stream), "cudaMallocAsync");
    return p;
  }
  void deallocate(void* p, std::size_t, CUstream_st* stream) noexcept override {
    if (p != nullptr) penstock::cuda::detail::report_cleanup_failure(cudaFreeAsync(p, stream), "cudaFreeAsync");
  }
  void copy_from_host(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) override {
    if (bytes == 0) return;
    copies_.count_to_device();
    auto& staged = staging_.acquire(bytes);
    std::memcpy(staged.data, source, bytes);
    const cudaError_t status = cudaMemcpyAsync(destination, staged.data, bytes, cudaMemcpyHostToDevice, stream);
    staging_.release_after(staged, stream);
    check(status, "cudaMemcpyAsync(host to device)");
  }
  void copy_to_host(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) override {
    if (bytes == 0) return;
    if (completed_copy_stream != nullptr) stream = completed_copy_stream;
    copies_.count_to_host();
    auto& staged = staging_.acquire(bytes);
    cudaError_t status = cudaMemcpyAsync(staged.data, source, bytes, cudaMemcpyDeviceToHost, stream);
    if (status == cudaSuccess) {
      synchronizations_.fetch_add(1, std::memory_order_relaxed);
      status = cudaStreamSynchronize(stream);
    }
    if (status == cudaSuccess) std::memcpy(destination, staged.data, bytes);
    staging_.release_after(staged, stream);
    check(status, "cudaMemcpyAsync(device to host)");
  }
  void copy_within(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) override {
    if (bytes == 0) return;
    check(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice, stream),
          "cudaMemcpyAsync(device to device)");
  }

  [[nodiscard]] std::uint64_t synchronizations() const noexcept {
    return synchronizations_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] gpu_runtime::copy_counts counts() const noexcept { return copies_.counts(); }

 private:
  staging_pool staging_;
  std::atomic<std::uint64_t> synchronizations_{0};
  copy_counter copies_;
};

class cuda_gpu_runtime final : public gpu_runtime {
 public:
  static constexpr int device_index = 0;
  static constexpr std::size_t streams = 8;

  explicit cuda_gpu_runtime(std::size_t nodes)
      : pool_(device_index, streams),
        callbacks_(device_index, 1),
        copy_pool_(device_index, 1),
        copies_(copy_pool_.acquire()),
        memory_(device_index),
        stream_of_(nodes),
        events_(nodes),
        launched_(nodes, 0),
        stream_taken_(nodes) {}

  [[nodiscard]] gpu_backend backend() const noexcept override { return gpu_backend::cuda; }
  [[nodiscard]] int device() const noexcept override { return device_index; }
  [[nodiscard]] std::string_view why_no_device() const noexcept override { return {}; }
  [[nodiscard]] gpu_memory_resource& memory() noexcept override { return memory_; }

  CUstream_st* begin_step(std::uint32_t node, std::span<const std::uint32_t> after) override {
    // A chain stays on one stream: the first GPU consumer of a GPU step takes
    // over its stream (ordered after it for free); the others wait for its
    // event on streams of their own.
    std::optional<penstock::cuda::stream_view> stream;
    for (auto p : after) {
      if (launched_[p] != 0 && !stream_taken_[p].exchange(true, std::memory_order_relaxed)) {
        stream.emplace(stream_of_[p], device_index);
        break;
      }
    }
    if (!stream) stream.emplace(pool_.acquire());
    for (auto p : after) {
      if (launched_[p] == 0 || stream_of_[p] == stream->native_handle()) continue;
      stream->wait(*events_[p]);
    }
    stream_of_[node] = stream->native_handle();
    return stream->native_handle();
  }

  void end_step(std::uint32_t node, void (*done)(void*), void* data) override {
    auto& completed = events_[node];
    if (!completed) completed.emplace(device_index);
    completed->record(penstock::cuda::stream_view(stream_of_[node], device_index));
    launched_[node] = 1;
    // The callback goes on a stream of its own, after the step's event: on
    // the step's stream it would hold back the next step of a chain until the
    // host had run it.
    const auto callbacks = callbacks_.acquire();
    callbacks.wait(*completed);
    check(cudaLaunchHostFunc(callbacks.native_handle(), done, data), "cudaLaunchHostFunc");
  }

  void mark_ready(std::uint32_t node, CUstream_st* stream) override {
    auto& ready = events_[node];
    if (!ready) ready.emplace(device_index);
    ready->record(penstock::cuda::stream_view(stream, device_index));
    stream_of_[node] = stream;
    stream_taken_[node].store(true, std::memory_order_relaxed);  // its stream is a consumer's
    launched_[node] = 1;
  }

  void wait_for(std::uint32_t node, CUstream_st* stream) override {
    if (launched_[node] == 0 || stream_of_[node] == stream) return;
    penstock::cuda::stream_view(stream, device_index).wait(*events_[node]);
  }

  void check_step(std::uint32_t node) override {
    // An error of the step's kernels is sticky: the stream reports it.
    const cudaError_t status = cudaStreamQuery(stream_of_[node]);
    if (status != cudaSuccess && status != cudaErrorNotReady) check(status, "the step's GPU work");
  }

  void wait_step(std::uint32_t node) override {
    if (launched_[node] == 0) return;
    synchronizations_.fetch_add(1, std::memory_order_relaxed);
    events_[node]->synchronize();
  }

  void copy_completed_values(bool on) noexcept override {
    completed_copy_stream = on ? copies_.native_handle() : nullptr;
  }

  [[nodiscard]] std::uint64_t host_synchronizations() const noexcept override {
    return synchronizations_.load(std::memory_order_relaxed) + memory_.synchronizations();
  }
  [[nodiscard]] copy_counts copies() const noexcept override { return memory_.counts(); }

 private:
  // Declared first, destroyed last: values freed on its streams go first.
  penstock::cuda::stream_pool pool_;
  penstock::cuda::stream_pool callbacks_;  // one stream, for the host callbacks
  penstock::cuda::stream_pool copy_pool_;  // one stream, for copy_completed_values
  penstock::cuda::stream_view copies_;
  cuda_memory memory_;
  std::vector<cudaStream_t> stream_of_;
  std::vector<std::optional<penstock::cuda::event>> events_;
  // Written by the thread that enqueued the step, read by its consumers'
  // threads after the executor's countdown (which orders them).
  std::vector<char> launched_;
  std::vector<std::atomic<bool>> stream_taken_;
  std::atomic<std::uint64_t> synchronizations_{0};
};

}  // namespace

std::string cuda_unavailable_reason() {
  std::string why = penstock::cuda::no_device_reason();
  if (!why.empty()) return why;
  const auto info = penstock::cuda::device_info(0);
  if (!info.memory_pools_supported) {
    return "CUDA device 0 (" + info.name + ") has no stream-ordered allocation (cudaMallocAsync)";
  }
  return {};
}

std::unique_ptr<gpu_runtime> make_cuda_gpu_runtime(std::size_t nodes) {
  return std::make_unique<cuda_gpu_runtime>(nodes);
}

}  // namespace penstock::detail::r1
