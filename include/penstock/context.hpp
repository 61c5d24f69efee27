// ps::context: what a running step may ask of the runtime. A step whose
// callable takes `ps::context&` as its first parameter receives one: its name,
// logging, and cooperative cancellation (Ctrl-C, timeouts).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace penstock {

// Thrown by context::throw_if_stop_requested(); the runtime reports the step
// as cancelled (run interrupted) or timed out, not as a failure of its code.
class stop_requested_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class gpu_context;

namespace detail {
struct log_sink {
  virtual void write(std::string_view step, std::string_view message) = 0;

 protected:
  ~log_sink() = default;
};
}  // namespace detail

class context {
 public:
  using clock = std::chrono::steady_clock;

  context(std::string_view step_name, const std::atomic<bool>* run_stop, clock::time_point deadline,
          detail::log_sink* sink, std::size_t element = npos, void* element_cache = nullptr,
          gpu_context* gpu = nullptr) noexcept
      : step_name_(step_name),
        run_stop_(run_stop),
        deadline_(deadline),
        sink_(sink),
        element_(element),
        element_cache_(element_cache),
        gpu_(gpu) {}

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  [[nodiscard]] std::string_view step_name() const noexcept { return step_name_; }

  // Index of the element a ps::map task works on; npos for ordinary steps.
  [[nodiscard]] std::size_t element() const noexcept { return element_; }

  // True once the run is interrupted or this step's timeout has passed. Long
  // steps should poll it (every batch, every epoch) and return early.
  [[nodiscard]] bool stop_requested() const noexcept {
    if (run_stop_ != nullptr && run_stop_->load(std::memory_order_relaxed)) return true;
    return deadline_ != clock::time_point::max() && clock::now() >= deadline_;
  }

  // The same step's context for element `i` of a ps::map.
  [[nodiscard]] context for_element(std::size_t i) const noexcept {
    return context(step_name_, run_stop_, deadline_, sink_, i, element_cache_, gpu_);
  }

  [[nodiscard]] bool timed_out() const noexcept {
    return deadline_ != clock::time_point::max() && clock::now() >= deadline_;
  }

  void throw_if_stop_requested() const {
    if (stop_requested()) {
      throw stop_requested_error(std::string("step '").append(step_name_).append("' was asked to stop"));
    }
  }

  // For the runtime: where a ps::map's elements are cached one by one
  // (opaque; null when the run does not cache this step).
  [[nodiscard]] void* element_cache() const noexcept { return element_cache_; }

  // For the runtime: the GPU context of a GPU step's run (null for CPU steps).
  [[nodiscard]] gpu_context* gpu() const noexcept { return gpu_; }
  void attach_gpu(gpu_context* gpu) noexcept { gpu_ = gpu; }

  // A line in the run's log, prefixed with the step's name. Thread-safe.
  void log(std::string_view message) const {
    if (sink_ != nullptr) sink_->write(step_name_, message);
  }

 private:
  std::string_view step_name_;
  const std::atomic<bool>* run_stop_;
  clock::time_point deadline_;
  detail::log_sink* sink_;
  std::size_t element_;
  void* element_cache_;
  gpu_context* gpu_;
};

}  // namespace penstock
