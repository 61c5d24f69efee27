// Device discovery: device_count(), no_device_reason() and device_info()
// agree with each other, and a machine without a GPU or driver is reported,
// not an error. Prints what it found (the test log says which machine ran it).
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <penstock/cuda/device.hpp>

#include <iostream>
#include <stdexcept>
#include <string>

namespace ps = penstock;

TEST(gpu_device, count_and_reason_agree) {
  const int count = ps::cuda::device_count();
  const std::string reason = ps::cuda::no_device_reason();
  std::cout << "device_count() = " << count << (reason.empty() ? "" : ", " + reason) << "\n";
  EXPECT_GE(count, 0);
  if (count == 0) {
    EXPECT_EQ(reason.rfind("no CUDA device: ", 0), 0u) << reason;
    EXPECT_GT(reason.size(), std::string("no CUDA device: ").size()) << reason;
  } else {
    EXPECT_EQ(reason, "");
  }
}

TEST(gpu_device, device_info_refuses_an_index_it_does_not_have) {
  const int count = ps::cuda::device_count();
  for (const int index : {-1, count}) {
    try {
      static_cast<void>(ps::cuda::device_info(index));
      FAIL() << "device_info(" << index << ") returned";
    } catch (const std::out_of_range& error) {
      const std::string what = error.what();
      EXPECT_EQ(what.rfind("device_info(" + std::to_string(index) + "): ", 0), 0u) << what;
      if (count == 0) {
        // The same reason the GPU tests skip with.
        EXPECT_NE(what.find(ps::cuda::no_device_reason()), std::string::npos) << what;
      } else {
        EXPECT_NE(what.find("this process sees " + std::to_string(count) + " CUDA device"), std::string::npos) << what;
      }
    }
  }
}

TEST(gpu_device, runtime_version_is_the_one_penstock_was_built_with) {
  EXPECT_EQ(ps::cuda::runtime_version(), CUDART_VERSION);
  const int driver = ps::cuda::driver_version();
  std::cout << "runtime " << ps::cuda::runtime_version() << ", driver " << driver << "\n";
  if (ps::cuda::device_count() > 0) {
    EXPECT_GT(driver, 0);
  }
}

TEST(gpu_device, describes_every_device) {
  if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  for (int i = 0; i < ps::cuda::device_count(); ++i) {
    const ps::cuda::device_properties device = ps::cuda::device_info(i);
    std::cout << "device " << i << ": " << device.name << ", sm_" << device.compute_capability_major
              << device.compute_capability_minor << ", " << device.total_memory / (1024 * 1024) << " MiB, "
              << device.multiprocessor_count << " SMs, memory pools " << (device.memory_pools_supported ? "yes" : "no")
              << ", driver " << device.driver_version << ", runtime " << device.runtime_version << "\n";
    EXPECT_EQ(device.index, i);
    EXPECT_FALSE(device.name.empty());
    EXPECT_GE(device.compute_capability_major, 7);  // CUDA 12 and 13 run nothing older than sm_70 / sm_75
    EXPECT_GT(device.total_memory, 0u);
    EXPECT_GT(device.multiprocessor_count, 0);
    EXPECT_GT(device.driver_version, 0);
    EXPECT_EQ(device.runtime_version, CUDART_VERSION);
    // device_buffer allocates with cudaMallocAsync: every device penstock
    // targets (sm_80, sm_90) has memory pools.
    EXPECT_TRUE(device.memory_pools_supported);
  }
}
