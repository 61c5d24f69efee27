// The GPU steps' code: Thrust algorithms on ps::thrust_policy(ctx), which is
// the CUDA backend under nvcc and oneTBB under the host compiler.
#include <stdexcept>
#include <string>

#include <thrust/functional.h>
#include <thrust/reduce.h>
#include <thrust/sort.h>
#include <thrust/transform.h>

#include <penstock/thrust.hpp>

#include "steps.hpp"

namespace gpu_steps {

namespace {
struct affine_fn {
  float a, b;
  PENSTOCK_HOST_DEVICE float operator()(float x) const { return a * x + b; }
};
struct square_fn {
  PENSTOCK_HOST_DEVICE float operator()(float x) const { return x * x; }
};
struct to_double_fn {
  PENSTOCK_HOST_DEVICE double operator()(float x) const { return x; }
};
}  // namespace

ps::device_vector<float> affine(ps::gpu_context& ctx, const ps::device_vector<float>& x, float a, float b) {
  ps::device_vector<float> y(x.size(), ctx);
  thrust::transform(ps::thrust_policy(ctx), x.begin(), x.end(), y.begin(), affine_fn{a, b});
  return y;
}

ps::device_vector<float> add(ps::gpu_context& ctx, const ps::device_vector<float>& x,
                             const ps::device_vector<float>& y) {
  if (x.size() != y.size()) {
    throw std::invalid_argument("add: " + std::to_string(x.size()) + " and " + std::to_string(y.size()) + " values");
  }
  ps::device_vector<float> out(x.size(), ctx);
  thrust::transform(ps::thrust_policy(ctx), x.begin(), x.end(), y.begin(), out.begin(), thrust::plus<float>());
  return out;
}

ps::device_vector<float> square_in_place(ps::gpu_context& ctx, ps::device_vector<float> x) {
  thrust::transform(ps::thrust_policy(ctx), x.begin(), x.end(), x.begin(), square_fn{});
  return x;
}

double sum(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  return thrust::transform_reduce(ps::thrust_policy(ctx), x.begin(), x.end(), to_double_fn{}, 0.0,
                                  thrust::plus<double>());
}

ps::device_vector<float> sorted(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  ps::device_vector<float> y(x.size(), ctx);
  thrust::copy(ps::thrust_policy(ctx), x.begin(), x.end(), y.begin());
  thrust::sort(ps::thrust_policy(ctx), y.begin(), y.end());
  return y;
}

ps::device_vector<float> times_three_on_cpu(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  ps::device_vector<float> y(x.size(), ctx);
  for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = 3 * x.data()[i];
  return y;
}

}  // namespace gpu_steps
