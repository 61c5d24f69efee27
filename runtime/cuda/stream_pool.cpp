// stream_pool: round-robin over a fixed set of streams, each created the
// first time it is handed out.
#include <penstock/cuda/stream_pool.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cuda_call.hpp"

namespace penstock::cuda {

struct stream_pool::state {
  explicit state(std::size_t count) : size(count), streams(std::make_unique<std::atomic<cudaStream_t>[]>(count)) {}

  std::size_t size;
  // Null until created. Read without the lock once set (acquire/release);
  // created under the lock, so that each is created exactly once.
  std::unique_ptr<std::atomic<cudaStream_t>[]> streams;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> created{0};
  std::mutex create;
};

stream_pool::stream_pool(int device, std::size_t size) : device_(device) {
  if (device < 0) {
    throw std::invalid_argument("stream_pool: device " + std::to_string(device) + " is negative");
  }
  if (size == 0) {
    throw std::invalid_argument("stream_pool: a pool needs at least one stream");
  }
  state_ = std::make_unique<state>(size);
}

stream_pool::~stream_pool() {
  if (!state_) {
    return;
  }
  for (std::size_t i = 0; i < state_->size; ++i) {
    if (cudaStream_t stream = state_->streams[i].load(std::memory_order_acquire)) {
      detail::report_cleanup_failure(cudaStreamDestroy(stream), detail::on_device("cudaStreamDestroy", device_));
    }
  }
}

stream_pool::stream_pool(stream_pool&& other) noexcept = default;

stream_pool& stream_pool::operator=(stream_pool&& other) noexcept {
  stream_pool old(std::move(*this));
  device_ = other.device_;
  state_ = std::move(other.state_);
  return *this;
}

std::size_t stream_pool::size() const noexcept { return state_ ? state_->size : 0; }

std::size_t stream_pool::created() const noexcept {
  return state_ ? state_->created.load(std::memory_order_acquire) : 0;
}

stream_view stream_pool::acquire() {
  if (!state_) {
    throw std::logic_error("stream_pool::acquire on a moved-from pool");
  }
  const std::size_t index = state_->next.fetch_add(1, std::memory_order_relaxed) % state_->size;
  std::atomic<cudaStream_t>& slot = state_->streams[index];
  cudaStream_t stream = slot.load(std::memory_order_acquire);
  if (stream == nullptr) {
    const std::lock_guard lock(state_->create);
    stream = slot.load(std::memory_order_relaxed);
    if (stream == nullptr) {
      const detail::device_guard current(device_);
      detail::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                    detail::on_device("cudaStreamCreateWithFlags", device_));
      slot.store(stream, std::memory_order_release);
      state_->created.fetch_add(1, std::memory_order_release);
    }
  }
  return {stream, device_};
}

}  // namespace penstock::cuda
