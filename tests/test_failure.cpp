// A step that throws: the run fails with the step's name and message, the
// steps that depend on it are skipped, independent steps still finish, and
// no value is handed out for what failed. Run at several worker counts; the
// asan preset checks that nothing leaks on the failure paths.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "rendezvous.hpp"

namespace ps = penstock;

namespace {

class failure : public ::testing::TestWithParam<std::size_t> {};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A heap-owning value, so that a value stranded by a failure would leak.
std::vector<std::string> make_words() { return {"alpha", "beta", "gamma", std::string(200, 'x')}; }

}  // namespace

TEST_P(failure, a_throwing_step_fails_the_run_with_its_name_and_message) {
  auto a = ps::step<"a">(make_words)();
  auto bad = ps::step<"explode">([](const std::vector<std::string>& w) -> std::size_t {
    throw std::runtime_error("no room for " + std::to_string(w.size()) + " words");
  })(a);
  const auto result = ps::pipeline<"p">(bad).run({.threads = GetParam()});
  EXPECT_FALSE(result.ok());
  EXPECT_FALSE(result.report().interrupted);
  const ps::step_report* r = result.report().find("explode");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status, ps::step_status::failed);
  EXPECT_EQ(r->attempts, 1u);
  EXPECT_EQ(r->error, "no room for 4 words");
  EXPECT_EQ(result.report().find("a")->status, ps::step_status::succeeded);

  const std::string summary = result.report().summary();
  EXPECT_TRUE(contains(summary, "pipeline 'p': 1 succeeded, 1 failed")) << summary;
  EXPECT_TRUE(contains(summary, "step 'explode' failed after 1 attempt: no room for 4 words")) << summary;
}

TEST_P(failure, dependents_are_skipped_and_independent_steps_finish) {
  std::atomic<int> dependents_ran{0};
  auto source = ps::step<"source">(make_words)();
  auto bad =
      ps::step<"bad">([](const std::vector<std::string>&) -> int { throw std::runtime_error("bad input"); })(source);
  auto after = ps::step<"after">([&](int x) {
    ++dependents_ran;
    return x + 1;
  })(bad);
  auto after_after = ps::step<"after_after">([&](int x) {
    ++dependents_ran;
    return x + 1;
  })(after);
  auto good = ps::step<"good">([](const std::vector<std::string>& w) { return w.size(); })(source);
  auto lonely = ps::step<"lonely">([] { return std::string("still here"); })();
  auto mixed = ps::step<"mixed">([&](std::size_t g, int a) {
    ++dependents_ran;
    return static_cast<int>(g) + a;
  })(good, after);
  const auto p = ps::pipeline<"p">(after_after, good, lonely, mixed);
  const auto result = p.run({.threads = GetParam()});

  EXPECT_FALSE(result.ok());
  const auto& report = result.report();
  EXPECT_EQ(report.find("source")->status, ps::step_status::succeeded);
  EXPECT_EQ(report.find("bad")->status, ps::step_status::failed);
  EXPECT_EQ(report.find("after")->status, ps::step_status::skipped);
  EXPECT_EQ(report.find("after_after")->status, ps::step_status::skipped);
  EXPECT_EQ(report.find("mixed")->status, ps::step_status::skipped);
  EXPECT_EQ(report.find("good")->status, ps::step_status::succeeded);
  EXPECT_EQ(report.find("lonely")->status, ps::step_status::succeeded);
  EXPECT_EQ(report.find("after")->attempts, 0u);
  EXPECT_EQ(dependents_ran.load(), 0);
  EXPECT_EQ(report.count(ps::step_status::skipped), 3u);
  EXPECT_EQ(report.count(ps::step_status::failed), 1u);
  EXPECT_EQ(report.count(ps::step_status::succeeded), 3u);  // source, good, lonely

  // Outputs of independent steps are still there.
  EXPECT_EQ(result.value(good), 4u);
  EXPECT_EQ(result.value(lonely), "still here");

  const std::string summary = report.summary();
  EXPECT_TRUE(contains(summary, "3 succeeded, 1 failed, 3 skipped")) << summary;
  EXPECT_TRUE(contains(summary, "step 'bad' failed after 1 attempt: bad input")) << summary;
}

TEST_P(failure, value_of_a_failed_or_skipped_output_throws_logic_error_naming_it) {
  auto bad = ps::step<"bad">([]() -> int { throw std::runtime_error("nope"); })();
  auto after = ps::step<"after">([](int x) { return x; })(bad);
  const auto result = ps::pipeline<"p">(bad, after).run({.threads = GetParam()});
  ASSERT_FALSE(result.ok());
  try {
    (void)result.value(bad);
    FAIL() << "expected std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_TRUE(contains(e.what(), "'bad'")) << e.what();
  }
  EXPECT_THROW((void)result.value(after), std::logic_error);
}

TEST_P(failure, an_exception_that_is_not_a_std_exception_is_reported) {
  auto bad = ps::step<"bad">([]() -> int { throw 42; })();
  const auto result = ps::pipeline<"p">(bad).run({.threads = GetParam()});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.report().find("bad")->status, ps::step_status::failed);
  EXPECT_TRUE(contains(result.report().find("bad")->error, "not a std::exception")) << result.report().summary();
}

// Both branches of a diamond fail: the join is skipped once, and both
// failures are reported.
TEST_P(failure, every_failure_is_reported) {
  auto source = ps::step<"source">(make_words)();
  auto left =
      ps::step<"left">([](const std::vector<std::string>&) -> int { throw std::runtime_error("left broke"); })(source);
  auto right = ps::step<"right">(
      [](const std::vector<std::string>&) -> int { throw std::invalid_argument("right broke"); })(source);
  auto join = ps::step<"join">([](int l, int r) { return l + r; })(left, right);
  const auto result = ps::pipeline<"p">(join).run({.threads = GetParam()});
  const auto& report = result.report();
  EXPECT_EQ(report.find("left")->error, "left broke");
  EXPECT_EQ(report.find("right")->error, "right broke");
  EXPECT_EQ(report.find("join")->status, ps::step_status::skipped);
  const std::string summary = report.summary();
  EXPECT_TRUE(contains(summary, "step 'left' failed")) << summary;
  EXPECT_TRUE(contains(summary, "step 'right' failed")) << summary;
}

// A failure partway through a run in which values are being moved and
// released: the asan preset checks that every value is freed.
TEST_P(failure, values_in_flight_are_freed_when_a_step_fails) {
  auto source = ps::step<"source">(make_words)();
  auto grow = ps::step<"grow">([](std::vector<std::string> w) {
    w.insert(w.end(), w.begin(), w.end());
    return w;
  })(source);
  auto keep = ps::step<"keep">([](std::vector<std::string> w) {
                return std::make_unique<std::string>(w.front());
              }).cache(ps::never)(grow);
  auto bad = ps::step<"bad">([](const std::unique_ptr<std::string>& s) -> std::vector<std::string> {
    throw std::runtime_error("after " + *s);
  })(keep);
  auto count = ps::step<"count">([](const std::vector<std::string>& w) { return w.size(); })(bad);
  const auto result = ps::pipeline<"p">(count).run({.threads = GetParam()});
  EXPECT_EQ(result.report().find("bad")->error, "after alpha");
  EXPECT_EQ(result.report().find("count")->status, ps::step_status::skipped);
}

INSTANTIATE_TEST_SUITE_P(threads, failure, ::testing::ValuesIn(penstock_test::all_thread_counts),
                         penstock_test::thread_count_name);
