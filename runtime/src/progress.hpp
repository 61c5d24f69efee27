// progress: what a run shows while it works, as an observer of the run. On
// a terminal, one live line (done / running / total, elapsed) redrawn ten
// times a second; otherwise a plain line per finished step. Also shows the
// steps' ctx.log() lines and the run's warnings.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string_view>
#include <thread>

#include <penstock/graph_description.hpp>
#include <penstock/observer.hpp>
#include <penstock/run_report.hpp>

namespace penstock::detail::r1 {

class progress final : public observer {
 public:
  // `mode` is not none (a run that shows nothing attaches no progress).
  progress(const graph_description& graph, progress_mode mode, std::FILE* out);
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress();

  void step_started(std::uint32_t node, int worker) override;
  // A hit counts as cached; a skipped step (or one never started) is not shown.
  void step_finished(std::uint32_t node, const step_report& report, std::chrono::nanoseconds took) override;
  void log(std::string_view step, std::size_t element, std::string_view line) override;
  void warning(std::string_view message) override;
  // Stops the live line and prints its final state.
  void close();

 private:
  void print_line(std::string_view text);
  void draw_locked();
  void ticker();

  const graph_description& graph_;
  std::size_t total_;
  progress_mode mode_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<std::size_t> running_{0};
  std::atomic<std::size_t> done_{0};
  std::atomic<std::size_t> failed_{0};
  std::atomic<std::size_t> cached_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool closing_ = false;
  std::thread thread_;
};

}  // namespace penstock::detail::r1
