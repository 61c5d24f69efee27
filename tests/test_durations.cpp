// step_report::duration: each step's own time, whatever clock the runtime
// reads per step (the TSC where it is invariant, runtime/src/step_clock.hpp).
// Only bounds that cannot fail on a slow machine: a step that sleeps at least
// d reports at least d, and steps that run one after the other report no
// more, together, than the run's wall time.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace ps = penstock;
using namespace std::chrono_literals;

namespace {

std::chrono::nanoseconds duration_of(const ps::run_report& report, std::string_view step) {
  const ps::step_report* found = report.find(step);
  EXPECT_NE(found, nullptr) << "no report for step '" << step << "'";
  return found != nullptr ? found->duration : std::chrono::nanoseconds(-1);
}

}  // namespace

class durations : public ::testing::TestWithParam<ps::progress_mode> {};

TEST_P(durations, each_step_reports_its_own_time_and_together_no_more_than_the_run) {
  auto first = ps::step<"sleeps_30ms">([] {
    std::this_thread::sleep_for(30ms);
    return 1;
  })();
  auto second = ps::step<"sleeps_10ms">([](int x) {
    std::this_thread::sleep_for(10ms);
    return x + 1;
  })(first);
  auto third = ps::step<"returns_at_once">([](int x) { return x + 1; })(second);
  const auto result = ps::pipeline<"durations">(third).run({.threads = 2, .progress = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  const auto& report = result.report();
  const auto a = duration_of(report, "sleeps_30ms");
  const auto b = duration_of(report, "sleeps_10ms");
  const auto c = duration_of(report, "returns_at_once");
  EXPECT_GE(a, 30ms);
  EXPECT_GE(b, 10ms);
  EXPECT_GE(c, 0ns);
  EXPECT_LT(c, a) << "a step that returns at once took longer than one that slept 30 ms";
  EXPECT_LE(a + b + c, report.wall) << "three steps in a chain took longer than their run";
}

// A map's duration covers its elements, run in parallel.
TEST_P(durations, a_map_reports_the_time_of_its_elements) {
  auto items = ps::step<"items">([] { return std::vector<int>{1, 2, 3, 4}; })();
  auto slow = ps::map<"sleeps_5ms_each">([](int x) {
    std::this_thread::sleep_for(5ms);
    return x;
  })(items);
  const auto result = ps::pipeline<"map_durations">(slow).run({.threads = 2, .progress = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  const auto took = duration_of(result.report(), "sleeps_5ms_each");
  // Four elements of 5 ms on at most 2 threads: at least two after another.
  EXPECT_GE(took, 10ms);
  EXPECT_LE(took, result.report().wall);
}

INSTANTIATE_TEST_SUITE_P(progress, durations, ::testing::Values(ps::progress_mode::none, ps::progress_mode::lines),
                         [](const auto& param_info) {
                           return std::string(param_info.param == ps::progress_mode::none ? "not_shown"
                                                                                          : "shown_in_lines");
                         });
