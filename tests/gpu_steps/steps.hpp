// The GPU steps of the GPU-step tests, declared for the pipelines in
// test_gpu_steps.cpp. Their code (steps.inl) is compiled twice: by the host
// compiler on Thrust's TBB backend (steps_host.cpp, every build, CI included)
// and by nvcc for CUDA (steps_cuda.cu, builds with CUDA); each test binary
// links one of them.
#pragma once

#include <string>
#include <vector>

#include <penstock/device_vector.hpp>
#include <penstock/gpu_context.hpp>

namespace gpu_steps {

namespace ps = penstock;

// The backend these definitions were compiled for, and why a run cannot
// have it here ("" when it can).
ps::gpu_backend compiled_backend();
std::string unavailable_reason();

// y[i] = a * x[i] + b
ps::device_vector<float> affine(ps::gpu_context& ctx, const ps::device_vector<float>& x, float a, float b);
// x[i] + y[i]; throws std::invalid_argument when the sizes differ
ps::device_vector<float> add(ps::gpu_context& ctx, const ps::device_vector<float>& x,
                             const ps::device_vector<float>& y);
// x squared in place: takes its input by value (moved from its last consumer)
ps::device_vector<float> square_in_place(ps::gpu_context& ctx, ps::device_vector<float> x);
// The sum of the values, on the host.
double sum(ps::gpu_context& ctx, const ps::device_vector<float>& x);
// Sorted ascending.
ps::device_vector<float> sorted(ps::gpu_context& ctx, const ps::device_vector<float>& x);
// x[i] * 3, written with a raw kernel on ctx.stream() where compiled for CUDA,
// so on the host backend it needs its CPU fallback (times_three_on_cpu).
ps::device_vector<float> times_three(ps::gpu_context& ctx, const ps::device_vector<float>& x);
ps::device_vector<float> times_three_on_cpu(ps::gpu_context& ctx, const ps::device_vector<float>& x);

}  // namespace gpu_steps
