// event: ordering between streams without the host waiting. A stream told to
// wait for an event recorded on another runs its later work only after the
// recorded work, while the host goes on; query() reports completion.
#include <gtest/gtest.h>

#include <penstock/cuda/device.hpp>
#include <penstock/cuda/device_buffer.hpp>
#include <penstock/cuda/event.hpp>
#include <penstock/cuda/stream_pool.hpp>

#include <cstddef>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "kernels.hpp"

namespace ps = penstock;
using penstock_test::cuda::host_gate;
using penstock_test::cuda::pinned_ints;

static_assert(!std::is_copy_constructible_v<ps::cuda::event>);
static_assert(std::is_nothrow_move_constructible_v<ps::cuda::event>);
static_assert(std::is_nothrow_move_assignable_v<ps::cuda::event>);

// The GPU model's chain of two GPU steps on different streams: `producer`
// computes data[i] = 3 * i (held back by a gate the host controls), records
// an event; `consumer` waits for the event and computes out[i] = data[i] + 1,
// then copies it to pinned host memory. Everything is enqueued before the
// gate opens, and the host never synchronizes in between: while the gate is
// closed, the event and the consumer stream must both be pending, which only
// cudaStreamWaitEvent can cause. Once it opens, the consumer saw the
// producer's results.
TEST(gpu_event, a_stream_waits_for_an_event_without_the_host_waiting) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  constexpr std::size_t n = 1 << 20;
  ps::cuda::stream_pool pool(0, 2);
  const ps::cuda::stream_view producer = pool.acquire();
  const ps::cuda::stream_view consumer = pool.acquire();
  ASSERT_NE(producer, consumer);

  pinned_ints input(n);
  std::iota(input.data(), input.data() + n, 0);
  pinned_ints output(n);
  host_gate gate;
  ps::cuda::event produced(0);

  ps::cuda::device_buffer<int> data(n, producer);
  data.copy_from_host(input.data(), n, producer);
  penstock_test::cuda::launch_gated_scale(gate, data.data(), n, 3, producer);
  produced.record(producer);

  consumer.wait(produced);
  ps::cuda::device_buffer<int> out(n, consumer);
  penstock_test::cuda::launch_add(data.data(), out.data(), n, 1, consumer);
  out.copy_to_host(output.data(), n, consumer);
  data.set_stream(consumer);  // its last user: freed after the consumer's kernel

  // The host got here with the producer still at the gate.
  EXPECT_FALSE(produced.query());
  EXPECT_FALSE(consumer.ready()) << "the consumer ran ahead of the event it waits for";
  EXPECT_FALSE(producer.ready());

  gate.open();
  consumer.synchronize();
  EXPECT_TRUE(produced.query());
  EXPECT_TRUE(producer.ready());
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(output[i], 3 * static_cast<int>(i) + 1) << "element " << i;
  }
}

TEST(gpu_event, an_event_never_recorded_is_complete) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  const ps::cuda::event never(0);
  EXPECT_NE(never.native_handle(), nullptr);
  EXPECT_EQ(never.device(), 0);
  EXPECT_TRUE(never.query());
  never.synchronize();
}

TEST(gpu_event, synchronize_waits_for_the_recorded_work) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  constexpr std::size_t n = 1 << 16;
  ps::cuda::stream_pool pool(0, 1);
  const ps::cuda::stream_view stream = pool.acquire();
  pinned_ints values(n);
  std::iota(values.data(), values.data() + n, 0);
  ps::cuda::device_buffer<int> data(n, stream);
  data.copy_from_host(values.data(), n, stream);
  penstock_test::cuda::launch_add(data.data(), data.data(), n, 7, stream);
  data.copy_to_host(values.data(), n, stream);
  ps::cuda::event copied(0);
  copied.record(stream);
  copied.synchronize();
  EXPECT_TRUE(copied.query());
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(values[i], static_cast<int>(i) + 7) << "element " << i;
  }
}

TEST(gpu_event, record_refuses_a_stream_of_another_device) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  ps::cuda::event on_zero(0);
  // Checked before any CUDA call, so a device 1 need not exist.
  EXPECT_THROW(on_zero.record(ps::cuda::stream_view(nullptr, 1)), std::invalid_argument);
}

TEST(gpu_event, moving_leaves_an_empty_event) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  ps::cuda::event first(0);
  CUevent_st* const handle = first.native_handle();
  ps::cuda::event second = std::move(first);
  EXPECT_EQ(second.native_handle(), handle);
  EXPECT_EQ(first.native_handle(), nullptr);  // NOLINT(bugprone-use-after-move)
  ps::cuda::event third(0);
  third = std::move(second);  // destroys third's own event
  EXPECT_EQ(third.native_handle(), handle);
  EXPECT_TRUE(third.query());
}
