// ps::context: what a running step may ask of the runtime. A step whose
// callable takes `ps::context&` as its first parameter receives one: its name,
// logging, and cooperative cancellation (Ctrl-C, timeouts).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
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
  virtual void write(std::string_view step, std::size_t element, std::string_view message) = 0;
  virtual void metric(std::string_view step, std::string_view name, double value, std::int64_t step_number) = 0;

 protected:
  ~log_sink() = default;
};
// Where a run's steps write the files they produce (the runtime's).
struct output_area {
  // A new, empty directory for one attempt of `step` (element: a map's
  // element index, or context::npos). Throws file_error if it cannot be made.
  virtual std::filesystem::path make_directory(std::string_view step, std::size_t element) = 0;

 protected:
  ~output_area() = default;
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
    context element(step_name_, run_stop_, deadline_, sink_, i, element_cache_, gpu_);
    element.outputs_ = outputs_;
    return element;
  }

  // A fresh, empty directory of this attempt's own, made on the first call:
  // a step writes the files it returns as ps::file or ps::directory here.
  // With the cache, a produced file is stored and the value handed on points
  // at its read-only copy in the cache; the attempt's directory is then
  // removed. Not thread-safe: call it from the step's own thread.
  [[nodiscard]] const std::filesystem::path& output_directory() const {
    if (output_directory_.empty()) {
      if (outputs_ == nullptr) throw std::logic_error("this context has no output directory (not run by penstock)");
      output_directory_ = outputs_->make_directory(step_name_, element_);
    }
    return output_directory_;
  }
  // output_directory() / name.
  [[nodiscard]] std::filesystem::path output_path(std::string_view name) const {
    return output_directory() / std::filesystem::path(std::string(name));
  }
  // For the runtime.
  void attach_outputs(detail::output_area* outputs) noexcept { outputs_ = outputs; }
  [[nodiscard]] const std::filesystem::path& output_directory_if_made() const noexcept { return output_directory_; }

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
    if (sink_ != nullptr) sink_->write(step_name_, element_, message);
  }

  // A metric of this step: `value` at `step_number` (an epoch, an
  // iteration; 0 for a metric logged once). Recorded with the run (`show`,
  // `compare`, MLflow). Thread-safe.
  void log_metric(std::string_view name, double value, std::int64_t step_number = 0) const {
    if (sink_ != nullptr) sink_->metric(step_name_, name, value, step_number);
  }

 private:
  std::string_view step_name_;
  const std::atomic<bool>* run_stop_;
  clock::time_point deadline_;
  detail::log_sink* sink_;
  std::size_t element_;
  void* element_cache_;
  gpu_context* gpu_;
  detail::output_area* outputs_ = nullptr;
  mutable std::filesystem::path output_directory_;
};

}  // namespace penstock
