// A GPU step for the device tests of the GPU executor: one block that spins
// for `cycles` clock cycles and records when it started and ended (the
// device's global timer, ns), so a test can tell whether two steps ran at
// the same time on the device.
#pragma once

#include <cstdint>

#include <penstock/device_vector.hpp>
#include <penstock/gpu_context.hpp>

namespace penstock_test::cuda {

// {start, end} in the device's global-timer nanoseconds.
penstock::device_vector<std::uint64_t> spin(penstock::gpu_context& ctx, std::int64_t cycles);
// The same, after `after` (so it is ordered after that step).
penstock::device_vector<std::uint64_t> spin_after(penstock::gpu_context& ctx,
                                                  const penstock::device_vector<std::uint64_t>& after,
                                                  std::int64_t cycles);

}  // namespace penstock_test::cuda
