// Interrupting a run through run_options::stop (what Ctrl-C sets in ps::main):
// running steps see ctx.stop_requested(), nothing new starts, and the report
// says the run was interrupted. The stop is set from inside a step, so the
// interleaving is forced, not timed.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <atomic>
#include <cstddef>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "rendezvous.hpp"

namespace ps = penstock;
using penstock_test::rendezvous;

namespace {

class cancellation : public ::testing::TestWithParam<std::size_t> {};
class cancellation_parallel : public ::testing::TestWithParam<std::size_t> {};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_P(cancellation, nothing_starts_after_the_stop) {
  std::atomic<bool> stop{false};
  std::atomic<int> started_after{0};
  auto trigger = ps::step<"trigger">([&stop] {
    stop = true;
    return 1;
  })();
  auto next = ps::step<"next">([&started_after](int x) {
    ++started_after;
    return x + 1;
  })(trigger);
  auto last = ps::step<"last">([&started_after](int x) {
    ++started_after;
    return x + 1;
  })(next);
  const auto result = ps::pipeline<"p">(last).run({.threads = GetParam(), .stop = &stop});
  const auto& report = result.report();
  EXPECT_TRUE(report.interrupted);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(report.find("trigger")->status, ps::step_status::succeeded);
  EXPECT_EQ(report.find("next")->status, ps::step_status::not_run);
  EXPECT_EQ(report.find("last")->status, ps::step_status::not_run);
  EXPECT_EQ(report.find("next")->attempts, 0u);
  EXPECT_EQ(started_after.load(), 0);
  EXPECT_THROW((void)result.value(last), std::logic_error);
  const std::string summary = report.summary();
  EXPECT_TRUE(contains(summary, "2 not run")) << summary;
  EXPECT_TRUE(contains(summary, "(interrupted)")) << summary;
}

TEST_P(cancellation, a_stop_set_before_the_run_runs_nothing) {
  std::atomic<bool> stop{true};
  std::atomic<int> ran{0};
  auto a = ps::step<"a">([&ran] { return ++ran; })();
  auto b = ps::step<"b">([&ran] { return ++ran; })();
  auto c = ps::step<"c">([](int x, int y) { return x + y; })(a, b);
  const auto result = ps::pipeline<"p">(c).run({.threads = GetParam(), .stop = &stop});
  EXPECT_TRUE(result.report().interrupted);
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(result.report().count(ps::step_status::not_run), 3u);
}

TEST_P(cancellation, a_stop_flag_that_stays_false_changes_nothing) {
  std::atomic<bool> stop{false};
  auto a = ps::step<"a">([](ps::context& ctx) { return ctx.stop_requested() ? -1 : 1; })();
  auto b = ps::step<"b">([](int x) { return x + 1; })(a);
  const auto result = ps::pipeline<"p">(b).run({.threads = GetParam(), .stop = &stop});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_FALSE(result.report().interrupted);
  EXPECT_EQ(result.value(b), 2);
}

// A failing step is not retried once the run is interrupted.
TEST_P(cancellation, no_retry_starts_after_the_stop) {
  std::atomic<bool> stop{false};
  std::atomic<int> attempts{0};
  auto flaky = ps::step<"flaky">([&]() -> int {
                 ++attempts;
                 stop = true;
                 throw std::runtime_error("failed while stopping");
               }).retries(5)();
  const auto result = ps::pipeline<"p">(flaky).run({.threads = GetParam(), .stop = &stop});
  EXPECT_TRUE(result.report().interrupted);
  EXPECT_EQ(attempts.load(), 1);
  EXPECT_EQ(result.report().find("flaky")->attempts, 1u);
  EXPECT_NE(result.report().find("flaky")->status, ps::step_status::succeeded);
}

// The element that sets the stop runs; elements not yet started never do, and
// the map node is reported cancelled.
TEST_P(cancellation, a_map_starts_no_new_elements_after_the_stop) {
  std::atomic<bool> stop{false};
  std::atomic<int> ran{0};
  auto v = ps::step<"v">([] { return std::vector<int>(1000, 1); })();
  auto m = ps::map<"m">([&](int x) {
    ++ran;
    stop = true;
    return x;
  })(v);
  const auto result = ps::pipeline<"p">(m).run({.threads = GetParam(), .stop = &stop});
  EXPECT_TRUE(result.report().interrupted);
  EXPECT_EQ(result.report().find("m")->status, ps::step_status::cancelled);
  EXPECT_GE(ran.load(), 1);
  EXPECT_LE(static_cast<std::size_t>(ran.load()), GetParam()) << "at most one element per worker was under way";
}

INSTANTIATE_TEST_SUITE_P(threads, cancellation, ::testing::ValuesIn(penstock_test::all_thread_counts),
                         penstock_test::thread_count_name);

// "spinner" is running (it has said so) when "trigger" sets the stop: it sees
// stop_requested(), throws through throw_if_stop_requested(), and is reported
// cancelled; what depends on either never starts.
TEST_P(cancellation_parallel, running_steps_see_the_stop) {
  std::atomic<bool> stop{false};
  rendezvous spinning(1);
  std::atomic<bool> saw_stop{false};
  auto spinner = ps::step<"spinner">([&](ps::context& ctx) {
    spinning.arrive();
    while (!ctx.stop_requested()) {
    }
    saw_stop = true;
    ctx.throw_if_stop_requested();
    return 1;
  })();
  auto trigger = ps::step<"trigger">([&] {
    const bool met = spinning.wait();
    stop = true;
    return met;
  })();
  auto after_spinner = ps::step<"after_spinner">([](int x) { return x; })(spinner);
  auto after_trigger = ps::step<"after_trigger">([](bool x) { return x; })(trigger);
  const auto result = ps::pipeline<"p">(after_spinner, after_trigger).run({.threads = GetParam(), .stop = &stop});

  const auto& report = result.report();
  EXPECT_TRUE(report.interrupted);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(saw_stop.load());
  EXPECT_EQ(report.find("trigger")->status, ps::step_status::succeeded);
  EXPECT_EQ(report.find("spinner")->status, ps::step_status::cancelled);
  EXPECT_TRUE(contains(report.find("spinner")->error, "'spinner'")) << report.find("spinner")->error;
  EXPECT_EQ(report.find("after_spinner")->status, ps::step_status::not_run);
  EXPECT_EQ(report.find("after_trigger")->status, ps::step_status::not_run);
  const std::string summary = report.summary();
  EXPECT_TRUE(contains(summary, "1 cancelled")) << summary;
  EXPECT_TRUE(contains(summary, "2 not run")) << summary;
}

INSTANTIATE_TEST_SUITE_P(threads, cancellation_parallel, ::testing::ValuesIn(penstock_test::parallel_thread_counts),
                         penstock_test::thread_count_name);
