// The executor's scheduling: independent steps run at the same time, a step
// starts as soon as its own inputs are ready (no level-by-level barriers), and
// results do not depend on the worker count. Overlap is proved by making
// steps meet at a rendezvous, never by sleeping or timing.
#include <gtest/gtest.h>

#include <penstock/penstock.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <numeric>
#include <string>
#include <vector>

#include "rendezvous.hpp"

namespace ps = penstock;
using penstock_test::rendezvous;

namespace {

class parallel : public ::testing::TestWithParam<std::size_t> {};
class any_threads : public ::testing::TestWithParam<std::size_t> {};

// Tracks how many steps are inside their body at once.
struct occupancy {
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  void enter() {
    const int n = ++now;
    int seen = peak.load();
    while (n > seen && !peak.compare_exchange_weak(seen, n)) {
    }
  }
  void leave() { --now; }
};

}  // namespace

// Both branches of a diamond wait for each other: they can only both finish
// if they run at the same time.
TEST_P(parallel, the_branches_of_a_diamond_overlap) {
  rendezvous meet(2);
  auto source = ps::step<"source">([] { return 1; })();
  auto left = ps::step<"left">([&meet](int x) { return meet.arrive_and_wait() ? x : -100; })(source);
  auto right = ps::step<"right">([&meet](int x) { return meet.arrive_and_wait() ? x : -100; })(source);
  auto join = ps::step<"join">([](int l, int r) { return l + r; })(left, right);
  const auto result = ps::pipeline<"diamond">(join).run({.threads = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(join), 2) << "left and right never ran at the same time";
}

// Two sources, too, start together.
TEST_P(parallel, independent_sources_overlap) {
  rendezvous meet(2);
  auto a = ps::step<"a">([&meet] { return meet.arrive_and_wait(); })();
  auto b = ps::step<"b">([&meet] { return meet.arrive_and_wait(); })();
  auto both = ps::step<"both">([](bool x, bool y) { return x && y; })(a, b);
  const auto result = ps::pipeline<"sources">(both).run({.threads = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_TRUE(result.value(both)) << "the two sources never ran at the same time";
}

// "slow" is at depth 1 and waits for "c3", at depth 3 of a chain that shares
// its source. An executor that finished each level before starting the next
// would hold c2 and c3 back until slow returned, and slow would wait forever.
TEST_P(parallel, a_step_starts_when_its_inputs_are_ready_not_when_its_level_is_done) {
  rendezvous c3_ran(1);
  auto source = ps::step<"source">([] { return 0; })();
  auto slow = ps::step<"slow">([&c3_ran](int x) { return c3_ran.wait() ? x : -100; })(source);
  auto c1 = ps::step<"c1">([](int x) { return x + 1; })(source);
  auto c2 = ps::step<"c2">([](int x) { return x + 1; })(c1);
  auto c3 = ps::step<"c3">([&c3_ran](int x) {
    c3_ran.arrive();
    return x + 1;
  })(c2);
  auto join = ps::step<"join">([](int s, int c) { return s + c; })(slow, c3);
  const auto result = ps::pipeline<"levels">(join).run({.threads = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(join), 3) << "c3 did not run while slow was still running";
}

// The same with no shared source: a long-running source must not keep a
// short chain from another source waiting at "level 1".
TEST_P(parallel, a_long_source_does_not_hold_back_another_chain) {
  rendezvous tail_ran(1);
  auto busy = ps::step<"busy">([&tail_ran] { return tail_ran.wait() ? 1 : -100; })();
  auto head = ps::step<"head">([] { return 1; })();
  auto middle = ps::step<"middle">([](int x) { return x + 1; })(head);
  auto tail = ps::step<"tail">([&tail_ran](int x) {
    tail_ran.arrive();
    return x + 1;
  })(middle);
  auto join = ps::step<"join">([](int b, int t) { return b + t; })(busy, tail);
  const auto result = ps::pipeline<"levels">(join).run({.threads = GetParam()});
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(join), 4) << "tail did not run while busy was still running";
}

INSTANTIATE_TEST_SUITE_P(threads, parallel, ::testing::ValuesIn(penstock_test::parallel_thread_counts),
                         penstock_test::thread_count_name);

// A lattice of steps gives the same values at every worker count, run after run.
TEST_P(any_threads, results_do_not_depend_on_the_worker_count) {
  auto n = ps::param<int>("n", 3);
  auto a = ps::step<"a">([](int x) { return x; })(n);
  auto b1 = ps::step<"b1">([](int x) { return x + 1; })(a);
  auto b2 = ps::step<"b2">([](int x) { return x * 2; })(a);
  auto b3 = ps::step<"b3">([](int x) { return x * x; })(a);
  auto c1 = ps::step<"c1">([](int x, int y) { return x + y; })(b1, b2);
  auto c2 = ps::step<"c2">([](int x, int y) { return x * y; })(b2, b3);
  auto v = ps::step<"v">([](int x) {
    std::vector<int> out(static_cast<std::size_t>(x));
    std::iota(out.begin(), out.end(), 0);
    return out;
  })(c2);
  auto squares = ps::map<"squares">([](int x) { return x * x; })(v);
  auto total = ps::step<"total">([](int x, int y, const std::vector<int>& s) {
    return x + y + std::accumulate(s.begin(), s.end(), 0);
  })(c1, c2, squares);
  const auto p = ps::pipeline<"lattice">(total);
  for (int run = 0; run < 20; ++run) {
    const auto result = p.run({.threads = GetParam(), .params = {{"n", "4"}}});
    ASSERT_TRUE(result.ok()) << result.report().summary();
    // a=4, b1=5, b2=8, b3=16, c1=13, c2=128, sum of squares 0..127 = 690880
    EXPECT_EQ(result.value(total), 13 + 128 + 690880) << "run " << run;
  }
}

TEST_P(any_threads, no_more_steps_run_at_once_than_there_are_workers) {
  occupancy seen;
  auto body = [&seen](int x) {
    seen.enter();
    // Some work, so that overlap is possible where it is allowed.
    int acc = x;
    for (int i = 0; i < 1000; ++i) acc = (acc * 31 + i) % 1000003;
    seen.leave();
    return acc;
  };
  auto s = ps::step<"s">([] { return 1; })();
  auto w1 = ps::step<"w1">(body)(s);
  auto w2 = ps::step<"w2">(body)(s);
  auto w3 = ps::step<"w3">(body)(s);
  auto w4 = ps::step<"w4">(body)(s);
  auto all = ps::step<"all">([](int a, int b, int c, int d) { return a + b + c + d; })(w1, w2, w3, w4);
  const auto p = ps::pipeline<"wide">(all);
  for (int run = 0; run < 10; ++run) {
    const auto result = p.run({.threads = GetParam()});
    ASSERT_TRUE(result.ok()) << result.report().summary();
  }
  EXPECT_GE(seen.peak.load(), 1);
  EXPECT_LE(static_cast<std::size_t>(seen.peak.load()), GetParam());
}

INSTANTIATE_TEST_SUITE_P(threads, any_threads, ::testing::ValuesIn(penstock_test::all_thread_counts),
                         penstock_test::thread_count_name);

// pipeline::run with more threads than oneTBB allows (the cores, here):
// the allowed number, said in each run's warnings (the library prints
// nothing by itself), never by oneTBB.
TEST(threads, a_request_above_what_onetbb_allows_is_clamped_and_said_in_the_warnings) {
  auto doubled = ps::step<"doubled">([](int x) { return 2 * x; })(ps::param<int>("x", 21));
  const auto p = ps::pipeline<"too_many_threads">(doubled);
  testing::internal::CaptureStderr();
  const auto first = p.run({.threads = 4000});
  const auto second = p.run({.threads = 4000});
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(doubled), 42);
  const std::string said = "run_options::threads = 4000 is more than the ";
  for (const auto* run : {&first, &second}) {
    ASSERT_EQ(run->report().warnings.size(), 1u);
    EXPECT_EQ(run->report().warnings[0].rfind(said, 0), 0u) << run->report().warnings[0];
  }
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_EQ(err.find("TBB Warning"), std::string::npos) << err;
}
