// .retries(n) and .timeout(d): a failing step runs again up to n times, and a
// step that overruns its timeout sees ctx.stop_requested() and ends timed
// out. Timeouts here are tiny and steps spin on stop_requested(): nothing
// sleeps, and no assertion depends on how long anything took.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "rendezvous.hpp"

namespace ps = penstock;
using namespace std::chrono_literals;

namespace {

class retries : public ::testing::TestWithParam<std::size_t> {};
class timeouts : public ::testing::TestWithParam<std::size_t> {};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_P(retries, a_step_that_succeeds_on_attempt_k_succeeds_after_k_attempts) {
  for (int k = 1; k <= 4; ++k) {
    std::atomic<int> attempts{0};
    auto flaky = ps::step<"flaky">([&attempts, k] {
                   const int attempt = ++attempts;
                   if (attempt < k) throw std::runtime_error("attempt " + std::to_string(attempt));
                   return attempt;
                 }).retries(3)();
    const auto result = ps::pipeline<"p">(flaky).run({.threads = GetParam()});
    ASSERT_TRUE(result.ok()) << "k=" << k << ": " << result.report().summary();
    EXPECT_EQ(result.value(flaky), k);
    EXPECT_EQ(attempts.load(), k);
    EXPECT_EQ(result.report().find("flaky")->attempts, static_cast<std::uint32_t>(k));
    EXPECT_EQ(result.report().find("flaky")->status, ps::step_status::succeeded);
  }
}

TEST_P(retries, a_step_that_always_fails_runs_retries_plus_one_times) {
  for (std::uint32_t n : {0u, 1u, 3u}) {
    std::atomic<int> attempts{0};
    auto doomed = ps::step<"doomed">([&attempts]() -> int {
                    throw std::runtime_error("attempt " + std::to_string(++attempts));
                  }).retries(n)();
    auto after = ps::step<"after">([](int x) { return x; })(doomed);
    const auto result = ps::pipeline<"p">(after).run({.threads = GetParam()});
    EXPECT_FALSE(result.ok());
    const auto* r = result.report().find("doomed");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->status, ps::step_status::failed);
    EXPECT_EQ(r->attempts, n + 1);
    EXPECT_EQ(attempts.load(), static_cast<int>(n + 1));
    // The report keeps the last attempt's message.
    EXPECT_EQ(r->error, "attempt " + std::to_string(n + 1));
    EXPECT_EQ(result.report().find("after")->status, ps::step_status::skipped);
    const std::string summary = result.report().summary();
    EXPECT_TRUE(contains(summary, "after " + std::to_string(n + 1) + " attempt")) << summary;
  }
}

// A retried step must see its input again: it is never moved from, even by
// the input's last consumer.
TEST_P(retries, every_attempt_sees_the_whole_input) {
  std::atomic<int> attempts{0};
  auto words = ps::step<"words">([] { return std::vector<std::string>{"a", "b", "c"}; })();
  auto joined = ps::step<"join">([&attempts](std::vector<std::string> w) {
                  std::string out;
                  for (auto& s : w) out += std::move(s);  // consumes its own copy
                  if (++attempts < 3) throw std::runtime_error("again, after seeing " + out);
                  return out;
                }).retries(2)(words);
  const auto result = ps::pipeline<"p">(joined).run({.threads = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(joined), "abc");
  EXPECT_EQ(result.report().find("join")->attempts, 3u);
}

INSTANTIATE_TEST_SUITE_P(threads, retries, ::testing::ValuesIn(penstock_test::all_thread_counts),
                         penstock_test::thread_count_name);

TEST_P(timeouts, a_step_that_polls_past_its_timeout_ends_timed_out) {
  std::atomic<long> polls{0};
  auto spin = ps::step<"spin">([&polls](ps::context& ctx) {
                while (!ctx.stop_requested()) ++polls;
                return 1;  // returns normally: the runtime still knows it overran
              }).timeout(1ms)();
  auto after = ps::step<"after">([](int x) { return x + 1; })(spin);
  const auto result = ps::pipeline<"p">(after, spin).run({.threads = GetParam()});
  EXPECT_FALSE(result.ok());
  EXPECT_FALSE(result.report().interrupted);
  const auto* r = result.report().find("spin");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status, ps::step_status::timed_out);
  EXPECT_EQ(r->attempts, 1u);
  EXPECT_TRUE(contains(r->error, "timeout")) << r->error;
  EXPECT_EQ(result.report().find("after")->status, ps::step_status::skipped);
  EXPECT_THROW((void)result.value(spin), std::logic_error);
  const std::string summary = result.report().summary();
  EXPECT_TRUE(contains(summary, "1 timed out")) << summary;
  EXPECT_TRUE(contains(summary, "step 'spin' timed out")) << summary;
}

TEST_P(timeouts, a_step_that_throws_on_stop_ends_timed_out_not_failed_or_cancelled) {
  auto spin = ps::step<"spin">([](ps::context& ctx) {
                for (;;) ctx.throw_if_stop_requested();
                return 1;
              }).timeout(1ms)();
  const auto result = ps::pipeline<"p">(spin).run({.threads = GetParam()});
  EXPECT_FALSE(result.ok());
  EXPECT_FALSE(result.report().interrupted);
  EXPECT_EQ(result.report().find("spin")->status, ps::step_status::timed_out);
}

TEST_P(timeouts, a_step_that_fails_after_its_timeout_is_timed_out_and_not_retried_forever) {
  std::atomic<int> attempts{0};
  auto spin = ps::step<"spin">([&attempts](ps::context& ctx) -> int {
                ++attempts;
                while (!ctx.stop_requested()) {
                }
                throw std::runtime_error("gave up");
              })
                  .timeout(1ms)
                  .retries(100)();
  const auto result = ps::pipeline<"p">(spin).run({.threads = GetParam()});
  const auto* r = result.report().find("spin");
  EXPECT_EQ(r->status, ps::step_status::timed_out);
  EXPECT_TRUE(contains(r->error, "gave up")) << r->error;
  EXPECT_LE(attempts.load(), 101);
  EXPECT_EQ(static_cast<int>(r->attempts), attempts.load());
}

TEST_P(timeouts, a_step_within_its_timeout_succeeds) {
  auto quick = ps::step<"quick">([](ps::context& ctx) { return ctx.stop_requested() ? -1 : 42; }).timeout(1h)();
  auto plain = ps::step<"plain">([](ps::context& ctx, int x) { return ctx.stop_requested() ? -1 : x + 1; })(quick);
  const auto result = ps::pipeline<"p">(plain).run({.threads = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(plain), 43);
  EXPECT_EQ(result.report().find("quick")->status, ps::step_status::succeeded);
}

// A timed-out step does not stop the rest of the run.
TEST_P(timeouts, a_timeout_does_not_stop_independent_steps) {
  auto spin = ps::step<"spin">([](ps::context& ctx) {
                while (!ctx.stop_requested()) {
                }
                return 0;
              }).timeout(1ms)();
  auto other = ps::step<"other">([](ps::context& ctx) { return ctx.stop_requested() ? -1 : 5; })();
  auto next = ps::step<"next">([](int x) { return x * 2; })(other);
  const auto result = ps::pipeline<"p">(spin, next).run({.threads = GetParam()});
  EXPECT_EQ(result.report().find("spin")->status, ps::step_status::timed_out);
  EXPECT_EQ(result.report().find("next")->status, ps::step_status::succeeded);
  EXPECT_EQ(result.value(next), 10);
}

INSTANTIATE_TEST_SUITE_P(threads, timeouts, ::testing::ValuesIn(penstock_test::all_thread_counts),
                         penstock_test::thread_count_name);
