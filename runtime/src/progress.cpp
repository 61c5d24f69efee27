// Progress display and run log; see progress.hpp.
#include "progress.hpp"

#include <unistd.h>

#include <fmt/format.h>

namespace penstock::detail::r1 {

namespace {
double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

progress::progress(const graph_description& graph, progress_mode mode, std::FILE* out)
    : graph_(graph), total_(graph.nodes.size()), mode_(mode), out_(out) {
  if (mode_ == progress_mode::automatic)
    mode_ = ::isatty(::fileno(out_)) != 0 ? progress_mode::live : progress_mode::lines;
  if (mode_ == progress_mode::live) thread_ = std::thread([this] { ticker(); });
}

progress::~progress() { close(); }

void progress::close() {
  {
    std::lock_guard lock(mutex_);
    if (closing_) return;
    closing_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
    std::lock_guard lock(mutex_);
    draw_locked();
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

void progress::step_started(std::uint32_t, int) { running_.fetch_add(1, std::memory_order_relaxed); }

void progress::step_finished(std::uint32_t node, const step_report& report, std::chrono::nanoseconds took) {
  if (mode_ == progress_mode::none) return;
  const std::string_view step = graph_.nodes[node].name;
  if (report.cache_hit && report.attempts == 0) {
    const std::size_t done = done_.fetch_add(1, std::memory_order_relaxed) + 1;
    cached_.fetch_add(1, std::memory_order_relaxed);
    if (mode_ != progress_mode::lines) return;
    std::lock_guard lock(mutex_);
    fmt::print(out_, "[{}] {} cached ({}/{})\n", graph_.name, step, done, total_);
    std::fflush(out_);
    return;
  }
  if (report.status == step_status::skipped || report.status == step_status::not_run) return;
  running_.fetch_sub(1, std::memory_order_relaxed);
  const std::size_t done = done_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (report.status != step_status::succeeded) failed_.fetch_add(1, std::memory_order_relaxed);
  if (mode_ != progress_mode::lines) return;
  std::lock_guard lock(mutex_);
  fmt::print(out_, "[{}] {} {} in {:.3f} s ({}/{})\n", graph_.name, step, to_string(report.status), seconds(took), done,
             total_);
  std::fflush(out_);
}

void progress::log(std::string_view step, std::size_t, std::string_view line) {
  print_line(fmt::format("[{}] {}", step, line));
}

void progress::warning(std::string_view message) { print_line(fmt::format("penstock: {}", message)); }

void progress::print_line(std::string_view text) {
  if (mode_ == progress_mode::none) return;
  std::lock_guard lock(mutex_);
  if (mode_ == progress_mode::live) std::fputs("\r\033[K", out_);
  fmt::print(out_, "{}\n", text);
  if (mode_ == progress_mode::live) draw_locked();
  std::fflush(out_);
}

void progress::draw_locked() {
  const auto elapsed = std::chrono::steady_clock::now() - start_;
  const std::size_t failed = failed_.load(std::memory_order_relaxed);
  const std::size_t cached = cached_.load(std::memory_order_relaxed);
  fmt::print(out_, "\r\033[K[{}] {}/{} done{}, {} running{}, {:.1f} s", graph_.name,
             done_.load(std::memory_order_relaxed), total_,
             cached != 0 ? fmt::format(" ({} cached)", cached) : std::string(),
             running_.load(std::memory_order_relaxed),
             failed != 0 ? fmt::format(", {} not succeeded", failed) : std::string(), seconds(elapsed));
}

void progress::ticker() {
  std::unique_lock lock(mutex_);
  while (!closing_) {
    draw_locked();
    std::fflush(out_);
    wake_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

}  // namespace penstock::detail::r1
