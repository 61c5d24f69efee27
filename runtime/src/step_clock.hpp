// step_clock: the time stamps behind step_report::duration. On x86-64 with an
// invariant TSC, one `rdtsc` per step (12 ns on the CI machine, where
// steady_clock::now() costs 30-60 ns); elsewhere steady_clock itself. Ticks
// become nanoseconds at a rate measured over the run: two steady_clock
// readings, one when it starts and one when it ends.
#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <x86intrin.h>
#define PENSTOCK_STEP_CLOCK_TSC 1
#endif

namespace penstock::detail::r1 {

class step_clock {
 public:
  using ticks = std::uint64_t;

  // Whether ticks are TSC cycles (else they are steady_clock nanoseconds).
  static bool uses_tsc() noexcept {
#ifdef PENSTOCK_STEP_CLOCK_TSC
    // CPUID leaf 0x80000007, EDX bit 8: the TSC runs at a constant rate in
    // every power state and is synchronised across cores.
    static const bool invariant = [] {
      unsigned a = 0, b = 0, c = 0, d = 0;
      return __get_cpuid(0x80000007, &a, &b, &c, &d) != 0 && (d & (1U << 8)) != 0;
    }();
    return invariant;
#else
    return false;
#endif
  }

  static ticks now() noexcept {
#ifdef PENSTOCK_STEP_CLOCK_TSC
    if (uses_tsc()) return __rdtsc();
#endif
    return static_cast<ticks>(std::chrono::steady_clock::now().time_since_epoch().count());
  }

  // Starts the run's measurement of the tick rate.
  step_clock() noexcept : start_time_(std::chrono::steady_clock::now()), start_ticks_(now()) {}

  // Ends it: every later conversion uses the rate over the whole run.
  void stop() noexcept { rate_ = measure(); }

  // `d` ticks as a duration: at the run's rate once it ended, else at the
  // rate so far (two clock readings: for the progress display only).
  [[nodiscard]] std::chrono::nanoseconds duration(ticks d) const noexcept {
    const double rate = rate_ > 0 ? rate_ : measure();
    return std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(d) * rate + 0.5));
  }
  // From `start` to `end` (0 if the end reads earlier, as another core's
  // counter could).
  [[nodiscard]] std::chrono::nanoseconds between(ticks start, ticks end) const noexcept {
    return end > start ? duration(end - start) : std::chrono::nanoseconds(0);
  }

 private:
  // Nanoseconds per tick from the start to now (1 when ticks are nanoseconds).
  [[nodiscard]] double measure() const noexcept {
    if (!uses_tsc()) return 1.0;
    const auto elapsed = std::chrono::steady_clock::now() - start_time_;
    const ticks counted = now() - start_ticks_;
    if (counted == 0) return 1.0;
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()) /
           static_cast<double>(counted);
  }

  std::chrono::steady_clock::time_point start_time_;
  ticks start_ticks_;
  double rate_ = 0;
};

}  // namespace penstock::detail::r1
