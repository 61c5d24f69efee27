// Compile-fail cases for penstock::error::gpu_context_in_cpu_step: a callable
// that takes ps::gpu_context& in a step not declared .on(ps::gpu).
#include <penstock/penstock.hpp>

#include <vector>

namespace ps = penstock;

std::vector<float> load(int n) { return std::vector<float>(static_cast<std::size_t>(n), 1.0f); }
ps::device_vector<float> scale(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  return ps::device_vector<float>(x.size(), ctx);
}
float first(ps::gpu_context&, const float& x) { return x; }
float first_on_cpu(const float& x) { return x; }
std::vector<float> values(int n) { return load(n); }

// 1. .on(ps::gpu) forgotten.
int forgotten(int argc, char** argv) {
  auto data = ps::step<"load">(load)(ps::param<int>("n", 10));
#if MISTAKE == 1  // gpu_context_in_cpu_step<"scale", ...>
  auto scaled = ps::step<"scale">(scale)(data);
#else
  auto scaled = ps::step<"scale">(scale).on(ps::gpu)(data);
#endif
  return ps::main(ps::pipeline<"forgotten">(scaled), argc, argv);
}

// 2. A ps::map, whose elements always run on CPU cores.
int in_a_map(int argc, char** argv) {
  auto data = ps::step<"values">(values)(ps::param<int>("n", 10));
#if MISTAKE == 2  // gpu_context_in_cpu_step<"firsts", float (*)(penstock::gpu_context&, const float&)>
  auto firsts = ps::map<"firsts">(first)(data);
#else
  auto firsts = ps::map<"firsts">(first_on_cpu)(data);
#endif
  return ps::main(ps::pipeline<"in_a_map">(firsts), argc, argv);
}
