// run_observers: the observers of one run (progress display, the workspace's
// record, the user's), told of each event in order; also the sink of the
// steps' ctx.log() and ctx.log_metric(). Keeps the run's warnings for its
// report. With none attached, `any()` is false and the executor calls nothing.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/context.hpp>
#include <penstock/observer.hpp>
#include <penstock/run_report.hpp>

namespace penstock::detail::r1 {

class run_observers final : public log_sink {
 public:
  // `steps`: told of each step's start, retry and end; without, of the rest
  // only (the run's record: the executor then makes no call per step for it).
  void attach(observer* o, bool steps = true) {
    if (o == nullptr) return;
    list_.push_back(o);
    if (steps) step_list_.push_back(o);
  }
  [[nodiscard]] bool any() const noexcept { return !list_.empty(); }
  // Whether any is told of steps: the executor asks before it calls.
  [[nodiscard]] bool steps() const noexcept { return !step_list_.empty(); }

  void run_started(const run_start& run) const {
    for (auto* o : list_) o->run_started(run);
  }
  void step_started(std::uint32_t node, int worker) const {
    for (auto* o : step_list_) o->step_started(node, worker);
  }
  void step_retried(std::uint32_t node, std::uint32_t attempt, std::string_view error) const {
    for (auto* o : step_list_) o->step_retried(node, attempt, error);
  }
  void step_finished(std::uint32_t node, const step_report& report, std::chrono::nanoseconds took) const {
    for (auto* o : step_list_) o->step_finished(node, report, took);
  }
  void run_finished(const run_report& report) const {
    for (auto* o : list_) o->run_finished(report);
  }
  // Told to every observer and kept for the run's report.
  void warning(std::string message) {
    for (auto* o : list_) o->warning(message);
    const std::scoped_lock lock(mutex_);
    warnings_.push_back(std::move(message));
  }
  [[nodiscard]] std::vector<std::string> take_warnings() {
    const std::scoped_lock lock(mutex_);
    return std::move(warnings_);
  }

  // log_sink
  void write(std::string_view step, std::size_t element, std::string_view message) override {
    for (auto* o : list_) o->log(step, element, message);
  }
  void metric(std::string_view step, std::string_view name, double value, std::int64_t step_number) override {
    for (auto* o : list_) o->metric(step, name, value, step_number);
  }

 private:
  std::vector<observer*> list_;
  std::vector<observer*> step_list_;
  std::mutex mutex_;
  std::vector<std::string> warnings_;
};

}  // namespace penstock::detail::r1
