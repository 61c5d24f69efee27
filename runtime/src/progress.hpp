// progress: what a run shows while it works. On a terminal, one live line
// (done / running / total, elapsed) redrawn ten times a second; otherwise a
// plain line per finished step; or nothing. Also the sink for ctx.log().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string_view>
#include <thread>

#include <penstock/context.hpp>
#include <penstock/run_report.hpp>

namespace penstock::detail::r1 {

class progress final : public log_sink {
 public:
  progress(std::string_view pipeline, std::size_t total, progress_mode mode, std::FILE* out);
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress();

  void started() noexcept {
    if (mode_ != progress_mode::none) running_.fetch_add(1, std::memory_order_relaxed);
  }
  void finished(std::string_view step, step_status status, std::chrono::nanoseconds took);
  // Whether finished() shows anything (else its `took` need not be measured).
  [[nodiscard]] bool shows_durations() const noexcept { return mode_ == progress_mode::lines; }
  // A step whose output came from the cache (it never started).
  void cached(std::string_view step);
  void write(std::string_view step, std::string_view message) override;
  // Stops the live line and prints its final state.
  void close();

 private:
  void draw_locked();
  void ticker();

  std::string_view pipeline_;
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
