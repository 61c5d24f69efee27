// A pipeline with a GPU step whose Thrust code runs on oneTBB (the host
// backend), built against the installed package's penstock::thrust_tbb.
#include <penstock/penstock.hpp>
#include <penstock/thrust.hpp>

#include <thrust/reduce.h>

#include <numeric>
#include <vector>

namespace ps = penstock;

std::vector<double> make_data(int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

double gpu_sum(ps::gpu_context& ctx, const ps::device_vector<double>& v) {
  return thrust::reduce(ps::thrust_policy(ctx), v.begin(), v.end(), 0.0);
}

int main(int argc, char** argv) {
  auto n = ps::param<int>("n", 100);
  auto data = ps::step<"make_data">(make_data)(n);
  auto sum = ps::step<"sum">(gpu_sum).on(ps::gpu)(data);
  return ps::main(ps::pipeline<"consumer">(sum), argc, argv);
}
