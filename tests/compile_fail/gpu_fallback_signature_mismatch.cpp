// Compile-fail cases for penstock::error::gpu_fallback_signature_mismatch: a
// GPU step's .fallback that cannot be called like the GPU callable.
#include <penstock/penstock.hpp>

#include <vector>

namespace ps = penstock;

std::vector<float> load(int n) { return std::vector<float>(static_cast<std::size_t>(n), 1.0f); }
ps::device_vector<float> scale(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  return ps::device_vector<float>(x.size(), ctx);
}
ps::device_vector<float> scale_on_cpu(ps::gpu_context& ctx, const ps::device_vector<float>& x) { return scale(ctx, x); }
std::vector<float> scale_on_vectors(const std::vector<float>& x) { return x; }

// 1. A fallback on std::vector instead of the GPU step's parameters.
int wrong_parameters(int argc, char** argv) {
  auto data = ps::step<"load">(load)(ps::param<int>("n", 10));
#if MISTAKE == 1  // gpu_fallback_signature_mismatch<"scale", ..., std::vector<float> (*)(const std::vector<float>&)>
  auto scaled = ps::step<"scale">(scale).on(ps::gpu).fallback(scale_on_vectors)(data);
#else
  auto scaled = ps::step<"scale">(scale).on(ps::gpu).fallback(scale_on_cpu)(data);
#endif
  return ps::main(ps::pipeline<"wrong_parameters">(scaled), argc, argv);
}
