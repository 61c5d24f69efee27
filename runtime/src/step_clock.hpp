// step_clock: the time stamps behind step_report::duration. On x86-64, where
// the CPU says its TSC runs at a constant rate and Linux itself keeps time
// with it (its clocksource is "tsc": the kernel found the cores' counters in
// step), one `rdtsc` per step: 12.5 ns on the CI machine, where
// steady_clock::now() costs 30-60 ns. Elsewhere steady_clock itself. Ticks
// become nanoseconds at a rate measured over the run.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <ratio>
#include <string>
#include <type_traits>

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#define PENSTOCK_STEP_CLOCK_TSC 1
#endif

namespace penstock::detail::r1 {

class step_clock {
 public:
  using ticks = std::uint64_t;
  using steady = std::chrono::steady_clock;
  // Without the TSC, ticks are steady_clock's own counts, in nanoseconds.
  static_assert(std::is_same_v<steady::period, std::nano>, "steady_clock does not count nanoseconds here");

  // Whether ticks are TSC cycles (else they are steady_clock nanoseconds).
  static bool uses_tsc() noexcept {
#ifdef PENSTOCK_STEP_CLOCK_TSC
    static const bool usable = [] {
      // CPUID leaf 0x80000007, EDX bit 8: the TSC ticks at one rate in
      // every power state. Whether the cores' counters agree is what the
      // kernel checked before it chose the TSC as its clocksource.
      unsigned a = 0, b = 0, c = 0, d = 0;
      if (__get_cpuid(0x80000007, &a, &b, &c, &d) == 0 || (d & (1U << 8)) == 0) return false;
      std::ifstream source("/sys/devices/system/clocksource/clocksource0/current_clocksource");
      std::string name;
      return static_cast<bool>(source >> name) && name == "tsc";
    }();
    return usable;
#else
    return false;
#endif
  }

  static ticks now() noexcept {
#ifdef PENSTOCK_STEP_CLOCK_TSC
    if (uses_tsc()) return __rdtsc();
#endif
    return static_cast<ticks>(steady::now().time_since_epoch().count());
  }

  // Starts the run's measurement of the tick rate.
  step_clock() noexcept : start_(pair()) {}

  // Ends it: every later conversion uses the rate over the whole run.
  void stop() noexcept { rate_ = measure(); }

  // `d` ticks as a duration: at the run's rate once it ended, else at the
  // rate so far (for the progress display only).
  [[nodiscard]] std::chrono::nanoseconds duration(ticks d) const noexcept {
    const double rate = rate_ > 0 ? rate_ : measure();
    return std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(d) * rate + 0.5));
  }

 private:
  // A steady_clock reading and the tick count at the same moment: the
  // reading between two tick reads, the pair whose tick reads are closest
  // of a few tries (a thread preempted between them would skew the rate).
  struct reading {
    steady::time_point time;
    ticks count = 0;
  };
  static reading pair() noexcept {
    if (!uses_tsc()) {
      const auto t = steady::now();
      return {t, static_cast<ticks>(t.time_since_epoch().count())};
    }
    reading best{};
    ticks best_gap = ~ticks{0};
    for (int attempt = 0; attempt < 5; ++attempt) {
      const ticks before = now();
      const auto t = steady::now();
      const ticks after = now();
      if (after < before) continue;  // moved to a core whose counter is behind
      if (after - before < best_gap) {
        best_gap = after - before;
        best = {t, before + (after - before) / 2};
      }
      if (best_gap < 2000) break;  // under a microsecond: close enough
    }
    return best_gap == ~ticks{0} ? reading{steady::now(), now()} : best;
  }

  // Nanoseconds per tick from the start to now (1 when ticks are
  // nanoseconds, or when the counts went backwards).
  [[nodiscard]] double measure() const noexcept {
    if (!uses_tsc()) return 1.0;
    const reading end = pair();
    if (end.count <= start_.count || end.time <= start_.time) return 1.0;
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(end.time - start_.time).count();
    return static_cast<double>(elapsed) / static_cast<double>(end.count - start_.count);
  }

  reading start_;
  double rate_ = 0;
};

}  // namespace penstock::detail::r1
