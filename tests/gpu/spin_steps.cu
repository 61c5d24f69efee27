#include "spin_steps.hpp"

namespace penstock_test::cuda {

namespace {
__device__ std::uint64_t global_ns() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__global__ void spin_kernel(std::uint64_t* times, std::int64_t cycles) {
  const std::uint64_t start = global_ns();
  const long long begin = clock64();
  while (clock64() - begin < cycles) {
  }
  if (threadIdx.x == 0) {
    times[0] = start;
    times[1] = global_ns();
  }
}
}  // namespace

penstock::device_vector<std::uint64_t> spin(penstock::gpu_context& ctx, std::int64_t cycles) {
  penstock::device_vector<std::uint64_t> times(2, ctx);
  spin_kernel<<<1, 32, 0, ctx.stream()>>>(times.data(), cycles);
  return times;
}

penstock::device_vector<std::uint64_t> spin_after(penstock::gpu_context& ctx,
                                                  const penstock::device_vector<std::uint64_t>&, std::int64_t cycles) {
  return spin(ctx, cycles);
}

}  // namespace penstock_test::cuda
