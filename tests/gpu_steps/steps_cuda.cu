// The GPU steps compiled by nvcc for the CUDA backend.
#include <penstock/cuda/device.hpp>

#include "steps.inl"

namespace gpu_steps {

ps::gpu_backend compiled_backend() { return ps::gpu_backend::cuda; }
std::string unavailable_reason() { return penstock::cuda::no_device_reason(); }

namespace {
__global__ void times_three_kernel(const float* x, float* y, std::size_t n) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = 3 * x[i];
}
}  // namespace

ps::device_vector<float> times_three(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  ps::device_vector<float> y(x.size(), ctx);
  if (x.empty()) return y;
  constexpr unsigned block = 256;
  const auto grid = static_cast<unsigned>((x.size() + block - 1) / block);
  times_three_kernel<<<grid, block, 0, ctx.stream()>>>(x.data(), y.data(), x.size());
  return y;
}

}  // namespace gpu_steps
