// gpu_runtime: how the executor runs GPU steps (.on(ps::gpu)) on the run's
// backend. Private to the runtime.
//   host  no CUDA device (or --gpu host): a GPU step runs like a CPU step, on
//         a oneTBB worker, its device_vectors in host memory;
//   cuda  each GPU step is enqueued on a stream of a per-run pool and its
//         completion recorded as an event. A GPU step waits for its GPU
//         inputs with cudaStreamWaitEvent (the host never waits between GPU
//         steps); CPU work that needs its result is woken by a host callback
//         (cudaLaunchHostFunc) once the event's work is done.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <penstock/gpu_context.hpp>

namespace penstock::detail::r1 {

class gpu_runtime {
 public:
  gpu_runtime() = default;
  gpu_runtime(const gpu_runtime&) = delete;
  gpu_runtime& operator=(const gpu_runtime&) = delete;
  virtual ~gpu_runtime() = default;

  [[nodiscard]] virtual gpu_backend backend() const noexcept = 0;
  // The CUDA device's index; -1 on the host backend.
  [[nodiscard]] virtual int device() const noexcept = 0;
  // Why the run has no CUDA device (host backend); "" on CUDA.
  [[nodiscard]] virtual std::string_view why_no_device() const noexcept = 0;
  [[nodiscard]] virtual gpu_memory_resource& memory() noexcept = 0;

  // The calls from here to wait_step order GPU steps on the device; the
  // executor makes them on the CUDA backend only (on the host backend a GPU
  // step runs to its end like a CPU step).

  // The stream node `node` is enqueued on, made to wait (on the device) for
  // the completion of each GPU step in `after` that was enqueued in this run.
  virtual CUstream_st* begin_step(std::uint32_t node, std::span<const std::uint32_t> after) = 0;
  // Records the completion of the work enqueued for `node`; once that work
  // has run, `done(data)` is called on a thread of CUDA's (it must not call
  // CUDA).
  virtual void end_step(std::uint32_t node, void (*done)(void*), void* data) = 0;
  // Records `node`'s event on `stream`, for a node whose value was not
  // made by enqueuing it (a cache hit, uploaded on `stream`); consumers then
  // wait for it like for a step's completion.
  virtual void mark_ready(std::uint32_t node, CUstream_st* stream) = 0;
  // Makes `stream` wait for `node`'s event, if it has one.
  virtual void wait_for(std::uint32_t node, CUstream_st* stream) = 0;
  // Throws cuda_error if the device reported an error for `node`'s work
  // (after `done` was called).
  virtual void check_step(std::uint32_t node) = 0;
  // Makes the calling thread wait for `node`'s work (outside the schedule);
  // counted as a host synchronization.
  virtual void wait_step(std::uint32_t node) = 0;

  // While on, for the calling thread: GPU values are copied to the host on a
  // stream of their own instead of the stream they were made on, which may
  // hold later steps' work. Only for values whose work is done (a CPU step's
  // inputs, the cache's copies after a step's completion).
  virtual void copy_completed_values(bool on) noexcept = 0;

  // How many times the runtime made the host wait for the device.
  [[nodiscard]] virtual std::uint64_t host_synchronizations() const noexcept = 0;

  // Copies between host memory and the run's GPU memory so far (the
  // runtime's, where an edge crosses or for the cache, and the steps' own).
  struct copy_counts {
    std::uint64_t to_device = 0;
    std::uint64_t to_host = 0;
  };
  [[nodiscard]] virtual copy_counts copies() const noexcept = 0;
};

// The copy counts of a memory resource, for gpu_runtime::copies().
class copy_counter {
 public:
  void count_to_device() noexcept { to_device_.fetch_add(1, std::memory_order_relaxed); }
  void count_to_host() noexcept { to_host_.fetch_add(1, std::memory_order_relaxed); }
  [[nodiscard]] gpu_runtime::copy_counts counts() const noexcept {
    return {.to_device = to_device_.load(std::memory_order_relaxed),
            .to_host = to_host_.load(std::memory_order_relaxed)};
  }

 private:
  std::atomic<std::uint64_t> to_device_{0};
  std::atomic<std::uint64_t> to_host_{0};
};

// The backend for a run of a graph with `nodes` nodes: `requested`, or CUDA
// when this build has it and a device is present, else the host. Throws
// std::invalid_argument when CUDA is requested and there is none.
std::unique_ptr<gpu_runtime> make_gpu_runtime(std::optional<gpu_backend> requested, std::size_t nodes);

// Called (once per program) by step code compiled for the TBB backend
// (<penstock/thrust.hpp>): runs then default to the host backend.
void register_host_gpu_code() noexcept;

#ifdef PENSTOCK_RUNTIME_WITH_CUDA
// The CUDA backend on device 0 (gpu_cuda.cpp).
std::unique_ptr<gpu_runtime> make_cuda_gpu_runtime(std::size_t nodes);
// "" when a CUDA device can be used, else why not.
std::string cuda_unavailable_reason();
#endif

}  // namespace penstock::detail::r1
