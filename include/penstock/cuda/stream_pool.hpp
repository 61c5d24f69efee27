// ps::cuda::stream_pool: a fixed number of CUDA streams on one device, handed
// out round-robin, so that independent GPU steps run concurrently without a
// stream per step. Streams are created on first use, so constructing a pool
// makes no CUDA call (and works on a machine without a GPU).
#pragma once

#include <cstddef>
#include <memory>

#include <penstock/cuda/stream.hpp>

namespace penstock::cuda {

class stream_pool {
 public:
  static constexpr std::size_t default_size = 4;

  // A pool of `size` streams on `device`. Makes no CUDA call. Throws
  // std::invalid_argument for a negative device or a size of 0.
  explicit stream_pool(int device, std::size_t size = default_size);
  // Destroys the streams it created; work still queued on them completes
  // first (cudaStreamDestroy does not wait for it). Streams handed out are
  // invalid afterwards.
  ~stream_pool();
  stream_pool(stream_pool&& other) noexcept;
  stream_pool& operator=(stream_pool&& other) noexcept;
  stream_pool(const stream_pool&) = delete;
  stream_pool& operator=(const stream_pool&) = delete;

  // The next stream in round-robin order, creating it on first use
  // (cudaStreamCreateWithFlags with cudaStreamNonBlocking: it never
  // synchronizes with the legacy default stream). Safe to call from several
  // threads; each stream is created once. Throws cuda_error when the stream
  // cannot be created, std::logic_error on a moved-from pool.
  [[nodiscard]] stream_view acquire();

  [[nodiscard]] int device() const noexcept { return device_; }
  // The number of streams; 0 once moved from.
  [[nodiscard]] std::size_t size() const noexcept;
  // How many of them exist so far.
  [[nodiscard]] std::size_t created() const noexcept;

 private:
  struct state;
  int device_;
  std::unique_ptr<state> state_;
};

}  // namespace penstock::cuda
