// Compile-fail cases for penstock::error::gpu_step_without_gpu_context: a
// step declared .on(ps::gpu) whose callable does not take ps::gpu_context&
// first. Built with MISTAKE=0 (the twin: must compile) and once per mistake.
#include <penstock/penstock.hpp>

#include <vector>

namespace ps = penstock;

std::vector<float> load(int n) { return std::vector<float>(static_cast<std::size_t>(n), 1.0f); }
ps::device_vector<float> scale(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  return ps::device_vector<float>(x.size(), ctx);
}
ps::device_vector<float> scale_without_context(const ps::device_vector<float>& x) {
  return ps::device_vector<float>(x.size(), ps::host_memory_resource(), nullptr);
}
ps::device_vector<float> scale_with_cpu_context(ps::context&, const ps::device_vector<float>& x) {
  return scale_without_context(x);
}

// 1. No context at all.
int no_context(int argc, char** argv) {
  auto data = ps::step<"load">(load)(ps::param<int>("n", 10));
#if MISTAKE == 1  // gpu_step_without_gpu_context<"scale", device_vector<float> (*)(const device_vector<float>&)>
  auto scaled = ps::step<"scale">(scale_without_context).on(ps::gpu)(data);
#else
  auto scaled = ps::step<"scale">(scale).on(ps::gpu)(data);
#endif
  return ps::main(ps::pipeline<"no_context">(scaled), argc, argv);
}

// 2. The CPU step's context instead of the GPU one.
int cpu_context(int argc, char** argv) {
  auto data = ps::step<"load">(load)(ps::param<int>("n", 10));
#if MISTAKE == 2  // gpu_step_without_gpu_context<"scale", ... (*)(penstock::context&, ...)>
  auto scaled = ps::step<"scale">(scale_with_cpu_context).on(ps::gpu)(data);
#else
  auto scaled = ps::step<"scale">(scale).on(ps::gpu)(data);
#endif
  return ps::main(ps::pipeline<"cpu_context">(scaled), argc, argv);
}
