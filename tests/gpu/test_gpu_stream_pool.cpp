// stream_pool: constructing one makes no CUDA call; acquire() hands out its
// streams round-robin, creates each once even when threads race for it, and
// the streams run independently of each other.
#include <gtest/gtest.h>

#include <penstock/cuda/cuda_error.hpp>
#include <penstock/cuda/device.hpp>
#include <penstock/cuda/device_buffer.hpp>
#include <penstock/cuda/stream_pool.hpp>

#include <cstddef>
#include <latch>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernels.hpp"

namespace ps = penstock;
using penstock_test::cuda::host_gate;
using penstock_test::cuda::pinned_ints;

TEST(gpu_stream_pool, construction_creates_no_stream) {
  // No device is needed: streams are created on first acquire().
  const ps::cuda::stream_pool pool(0, 3);
  EXPECT_EQ(pool.device(), 0);
  EXPECT_EQ(pool.size(), 3u);
  EXPECT_EQ(pool.created(), 0u);
  EXPECT_EQ(ps::cuda::stream_pool(0).size(), ps::cuda::stream_pool::default_size);
}

TEST(gpu_stream_pool, refuses_no_streams_and_negative_devices) {
  EXPECT_THROW(ps::cuda::stream_pool(0, 0), std::invalid_argument);
  EXPECT_THROW(ps::cuda::stream_pool(-1, 2), std::invalid_argument);
}

TEST(gpu_stream_pool, a_moved_from_pool_hands_out_nothing) {
  ps::cuda::stream_pool pool(0, 3);
  ps::cuda::stream_pool moved = std::move(pool);
  EXPECT_EQ(moved.size(), 3u);
  EXPECT_EQ(pool.size(), 0u);  // NOLINT(bugprone-use-after-move): what moving leaves is the point
  EXPECT_THROW(static_cast<void>(pool.acquire()), std::logic_error);
  pool = ps::cuda::stream_pool(0, 2);
  EXPECT_EQ(pool.size(), 2u);
}

TEST(gpu_stream_pool, acquire_without_a_device_throws) {
  if (ps::cuda::device_count() > 0) {
    GTEST_SKIP() << "a CUDA device is present: this test checks acquire() without one";
  }
  ps::cuda::stream_pool pool(0, 2);
  EXPECT_THROW(static_cast<void>(pool.acquire()), ps::cuda::cuda_error);
  EXPECT_EQ(pool.created(), 0u);
}

TEST(gpu_stream_pool, acquire_hands_out_the_streams_round_robin) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  ps::cuda::stream_pool pool(0, 3);
  std::vector<ps::cuda::stream_view> handed;
  for (int i = 0; i < 7; ++i) {
    handed.push_back(pool.acquire());
    EXPECT_EQ(pool.created(), std::min<std::size_t>(handed.size(), 3));
  }
  for (std::size_t i = 0; i < handed.size(); ++i) {
    EXPECT_NE(handed[i].native_handle(), nullptr) << "never the legacy default stream";
    EXPECT_EQ(handed[i].device(), 0);
    EXPECT_EQ(handed[i], handed[i % 3]) << i;
  }
  EXPECT_NE(handed[0], handed[1]);
  EXPECT_NE(handed[1], handed[2]);
  EXPECT_NE(handed[0], handed[2]);
}

TEST(gpu_stream_pool, threads_racing_for_new_streams_create_each_once) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  constexpr std::size_t threads = 4;
  constexpr std::size_t acquires = 64;
  ps::cuda::stream_pool pool(0, 3);
  std::vector<std::vector<ps::cuda::stream_view>> handed(threads);
  std::latch start(threads);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      start.arrive_and_wait();  // all threads hit the empty pool together
      for (std::size_t i = 0; i < acquires; ++i) {
        handed[t].push_back(pool.acquire());
      }
    });
  }
  for (auto& worker : workers) {
    worker.join();
  }
  std::set<void*> distinct;
  for (const auto& views : handed) {
    for (const auto& view : views) {
      distinct.insert(view.native_handle());
    }
  }
  EXPECT_EQ(distinct.size(), 3u);
  EXPECT_EQ(pool.created(), 3u);
}

// A stream held back by a closed gate does not hold back another stream of
// the pool: independent GPU steps overlap. (Were the pool's streams blocking
// streams, or the same one, the second could not finish first.)
TEST(gpu_stream_pool, streams_run_independently) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  constexpr std::size_t n = 1 << 16;
  ps::cuda::stream_pool pool(0, 2);
  const ps::cuda::stream_view held = pool.acquire();
  const ps::cuda::stream_view free_running = pool.acquire();
  ASSERT_NE(held, free_running);

  pinned_ints input(n);
  std::iota(input.data(), input.data() + n, 0);
  pinned_ints output(n);
  host_gate gate;

  ps::cuda::device_buffer<int> held_data(n, held);
  held_data.copy_from_host(input.data(), n, held);
  penstock_test::cuda::launch_gated_scale(gate, held_data.data(), n, 2, held);

  ps::cuda::device_buffer<int> in(n, free_running);
  ps::cuda::device_buffer<int> out(n, free_running);
  in.copy_from_host(input.data(), n, free_running);
  penstock_test::cuda::launch_add(in.data(), out.data(), n, 5, free_running);
  out.copy_to_host(output.data(), n, free_running);
  free_running.synchronize();  // returns while `held` still waits at the gate

  EXPECT_FALSE(held.ready()) << "the gate is closed: the held stream cannot have finished";
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(output[i], static_cast<int>(i) + 5) << i;
  }
  gate.open();
  held_data.copy_to_host(output.data(), n, held);
  held.synchronize();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(output[i], 2 * static_cast<int>(i)) << i;
  }
}
