// A meeting point for concurrency tests, in the spirit of oneTBB's
// test/common/spin_barrier.h: steps that must run at the same time meet here
// instead of guessing with sleeps. Shared by the behaviour tests in tests/.
#pragma once

#include <chrono>
#include <cstddef>
#include <latch>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace penstock_test {

// `count` parties arrive; each then waits, yielding, until all have arrived.
// If the runtime wrongly ran the parties one after another, the first would
// wait forever, so a party still alone after `patience` gives up and returns
// false: a broken scheduler fails the test instead of hanging it. No test
// asserts on how long anything took; the patience only bounds a hang and is
// far longer than any correct run needs.
class rendezvous {
 public:
  explicit rendezvous(std::ptrdiff_t count) : latch_(count) {}

  [[nodiscard]] bool arrive_and_wait() {
    latch_.count_down();
    return wait();
  }

  // Waits for the others without arriving: for a party that only needs to
  // know that the others have got here.
  [[nodiscard]] bool wait() {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (!latch_.try_wait()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::yield();
    }
    return true;
  }

  void arrive() { latch_.count_down(); }

  static constexpr std::chrono::seconds patience{30};

 private:
  std::latch latch_;
};

// Worker counts the concurrency tests run at, like Taskflow's unit tests.
// Tests that need two steps to overlap start at two.
inline constexpr std::size_t all_thread_counts[] = {1, 2, 4};
inline constexpr std::size_t parallel_thread_counts[] = {2, 4};

// Names parameterized cases "threads_2" rather than "0", "1".
inline std::string thread_count_name(const ::testing::TestParamInfo<std::size_t>& info) {
  return "threads_" + std::to_string(info.param);
}

}  // namespace penstock_test
