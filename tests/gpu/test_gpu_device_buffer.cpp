// device_buffer<T>: stream-ordered allocation and asynchronous copies. Round
// trips through the device on one stream and across two, the memory is
// returned in stream order, and empty buffers and bad sizes need no device.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <penstock/cuda/cuda_error.hpp>
#include <penstock/cuda/device.hpp>
#include <penstock/cuda/device_buffer.hpp>
#include <penstock/cuda/event.hpp>
#include <penstock/cuda/stream_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels.hpp"

namespace ps = penstock;

static_assert(!std::is_copy_constructible_v<ps::cuda::device_buffer<float>>);
static_assert(!std::is_copy_assignable_v<ps::cuda::device_buffer<float>>);
static_assert(std::is_nothrow_move_constructible_v<ps::cuda::device_buffer<float>>);
static_assert(std::is_nothrow_move_assignable_v<ps::cuda::device_buffer<float>>);

namespace {

// The legacy default stream of device 0: a stream_view makes no CUDA call,
// and empty buffers never use it.
const ps::cuda::stream_view no_stream(nullptr, 0);

struct sample {
  std::int32_t id;
  float weight;
};

}  // namespace

TEST(gpu_device_buffer, an_empty_buffer_allocates_nothing) {
  ps::cuda::device_buffer<double> empty(0, no_stream);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.size_bytes(), 0u);
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.stream(), no_stream);
  empty.copy_from_host(nullptr, 0, no_stream);  // nothing to copy: no CUDA call
  empty.copy_to_host(nullptr, 0, no_stream);
  ps::cuda::device_buffer<double> moved = std::move(empty);
  EXPECT_TRUE(moved.empty());
}

TEST(gpu_device_buffer, copies_beyond_its_size_are_refused) {
  ps::cuda::device_buffer<int> empty(0, no_stream);
  const std::vector<int> values{1, 2, 3};
  std::vector<int> back(3);
  try {
    empty.copy_from_host(values.data(), values.size(), no_stream);
    FAIL() << "copy_from_host accepted 3 elements into an empty buffer";
  } catch (const std::out_of_range& error) {
    EXPECT_STREQ(error.what(), "device_buffer::copy_from_host: 3 elements requested, the buffer holds 0");
  }
  EXPECT_THROW(empty.copy_to_host(back.data(), back.size(), no_stream), std::out_of_range);
  EXPECT_THROW(ps::cuda::device_buffer<double>(SIZE_MAX / 4, no_stream), std::length_error);
}

TEST(gpu_device_buffer, allocation_without_a_device_names_cudaMallocAsync) {
  if (ps::cuda::device_count() > 0) {
    GTEST_SKIP() << "a CUDA device is present: this test checks allocation without one";
  }
  try {
    ps::cuda::device_buffer<float> buffer(1024, no_stream);
    FAIL() << "allocated without a device";
  } catch (const ps::cuda::cuda_error& error) {
    EXPECT_EQ(error.call(), "cudaMallocAsync(4096 bytes, device 0)");
  }
}

TEST(gpu_device_buffer, round_trip_through_async_copies) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  constexpr std::size_t n = (1 << 20) + 3;  // 12 MiB of samples, not a power of two
  ps::cuda::stream_pool pool(0, 1);
  const ps::cuda::stream_view stream = pool.acquire();
  std::vector<sample> values(n);
  for (std::size_t i = 0; i < n; ++i) {
    values[i] = {static_cast<std::int32_t>(i), 0.5f * static_cast<float>(i % 1000)};
  }
  ps::cuda::device_buffer<sample> buffer(n, stream);
  EXPECT_EQ(buffer.size(), n);
  EXPECT_EQ(buffer.size_bytes(), n * sizeof(sample));
  EXPECT_NE(buffer.data(), nullptr);
  EXPECT_EQ(buffer.stream(), stream);

  buffer.copy_from_host(values.data(), n, stream);
  std::vector<sample> back(n, sample{-1, -1.0f});
  buffer.copy_to_host(back.data(), n, stream);
  stream.synchronize();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(back[i].id, values[i].id) << "element " << i;
    ASSERT_EQ(back[i].weight, values[i].weight) << "element " << i;
  }

  // A shorter copy touches only the first elements.
  const std::vector<sample> head{{-7, 1.0f}, {-8, 2.0f}};
  buffer.copy_from_host(head.data(), head.size(), stream);
  std::vector<sample> first(3);
  buffer.copy_to_host(first.data(), first.size(), stream);
  stream.synchronize();
  EXPECT_EQ(first[0].id, -7);
  EXPECT_EQ(first[1].id, -8);
  EXPECT_EQ(first[2].id, 2);
}

// Host -> device on one stream, a kernel on a second stream that waits for
// it through an event, device -> host on the second: the data crosses
// streams with no host synchronization until the end.
TEST(gpu_device_buffer, round_trip_across_two_streams) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  constexpr std::size_t n = 1 << 18;
  ps::cuda::stream_pool pool(0, 2);
  const ps::cuda::stream_view upload = pool.acquire();
  const ps::cuda::stream_view compute = pool.acquire();
  penstock_test::cuda::pinned_ints host(n);
  std::iota(host.data(), host.data() + n, 100);

  ps::cuda::device_buffer<int> in(n, upload);
  in.copy_from_host(host.data(), n, upload);
  ps::cuda::event uploaded(0);
  uploaded.record(upload);

  compute.wait(uploaded);
  ps::cuda::device_buffer<int> out(n, compute);
  penstock_test::cuda::launch_add(in.data(), out.data(), n, -100, compute);
  in.set_stream(compute);
  out.copy_to_host(host.data(), n, compute);
  compute.synchronize();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(host[i], static_cast<int>(i)) << "element " << i;
  }
}

// The memory goes back to the device's pool when the stream reaches the
// free: the pool's used bytes rise by the buffer's size and fall back.
TEST(gpu_device_buffer, frees_its_memory_in_stream_order) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  cudaMemPool_t memory_pool = nullptr;
  ASSERT_EQ(cudaDeviceGetDefaultMemPool(&memory_pool, 0), cudaSuccess);
  const auto used = [&] {
    std::uint64_t bytes = 0;
    EXPECT_EQ(cudaMemPoolGetAttribute(memory_pool, cudaMemPoolAttrUsedMemCurrent, &bytes), cudaSuccess);
    return bytes;
  };
  constexpr std::size_t n = 16 << 20;  // 64 MiB of floats
  ps::cuda::stream_pool pool(0, 1);
  const ps::cuda::stream_view stream = pool.acquire();
  stream.synchronize();
  const std::uint64_t before = used();
  {
    ps::cuda::device_buffer<float> buffer(n, stream);
    stream.synchronize();
    EXPECT_GE(used(), before + n * sizeof(float));
    ps::cuda::device_buffer<float> moved = std::move(buffer);  // one allocation, one free
    EXPECT_EQ(buffer.data(), nullptr);                         // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(moved.size(), n);
  }
  stream.synchronize();
  EXPECT_EQ(used(), before);
}
