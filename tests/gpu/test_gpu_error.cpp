// cuda_error: a failed CUDA call becomes an exception that names the call and
// CUDA's description of the error. Runs without a device; the last test
// checks a real failing call where there is none.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <penstock/cuda/cuda_error.hpp>
#include <penstock/cuda/device.hpp>
#include <penstock/cuda/stream_pool.hpp>

#include <iostream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace ps = penstock;

static_assert(std::is_base_of_v<std::runtime_error, ps::cuda::cuda_error>);
// Exceptions are copied as they travel between threads: never throwing there.
static_assert(std::is_nothrow_copy_constructible_v<ps::cuda::cuda_error>);

TEST(gpu_error, names_the_call_and_cudas_description) {
  const ps::cuda::cuda_error error(cudaErrorMemoryAllocation, "cudaMallocAsync(4096 bytes, device 0)");
  EXPECT_STREQ(error.what(), "cudaMallocAsync(4096 bytes, device 0) failed: out of memory (cudaErrorMemoryAllocation)");
}

TEST(gpu_error, keeps_the_code_and_the_call) {
  const ps::cuda::cuda_error error(cudaErrorInvalidResourceHandle, "cudaStreamQuery(device 1)");
  EXPECT_EQ(error.code(), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(error.call(), "cudaStreamQuery(device 1)");
  const ps::cuda::cuda_error copy = error;
  EXPECT_EQ(copy.call(), "cudaStreamQuery(device 1)");
  EXPECT_STREQ(copy.what(), error.what());
}

TEST(gpu_error, a_code_cuda_does_not_know_is_still_reported) {
  const ps::cuda::cuda_error error(99999, "cudaSomething");
  EXPECT_EQ(error.code(), 99999);
  EXPECT_EQ(std::string(error.what()).rfind("cudaSomething failed: ", 0), 0u) << error.what();
}

TEST(gpu_error, a_failing_call_without_a_device_throws_it) {
  if (ps::cuda::device_count() > 0) {
    GTEST_SKIP() << "a CUDA device is present: this test checks what a call does without one";
  }
  ps::cuda::stream_pool pool(0, 1);
  try {
    static_cast<void>(pool.acquire());
    FAIL() << "acquire() created a stream without a device";
  } catch (const ps::cuda::cuda_error& error) {
    const std::string what = error.what();
    std::cout << "acquire() without a device: " << what << "\n";
    EXPECT_NE(error.code(), cudaSuccess);
    EXPECT_EQ(what.rfind(std::string(error.call()) + " failed: ", 0), 0u) << what;
    EXPECT_NE(what.find(cudaGetErrorString(static_cast<cudaError_t>(error.code()))), std::string::npos) << what;
    EXPECT_NE(what.find(cudaGetErrorName(static_cast<cudaError_t>(error.code()))), std::string::npos) << what;
  }
  EXPECT_EQ(pool.created(), 0u);
}
