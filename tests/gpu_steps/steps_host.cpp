// The GPU steps on Thrust's TBB backend (host memory, no GPU needed).
#include "steps.inl"

namespace gpu_steps {

ps::gpu_backend compiled_backend() { return ps::gpu_backend::host; }
std::string unavailable_reason() { return {}; }

// No kernel language here: what a CUDA-only step does without a device. It
// asks for its stream, which the host backend does not have.
ps::device_vector<float> times_three(ps::gpu_context& ctx, const ps::device_vector<float>& x) {
  (void)ctx.stream();  // throws ps::gpu_unavailable_error on the host backend
  return times_three_on_cpu(ctx, x);
}

}  // namespace gpu_steps
