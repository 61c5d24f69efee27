// The GPU benchmarks' kernels, the GPU steps that launch them, and their raw
// CUDA peers (gpu_kernels.hpp says what each is). Compiled by nvcc at its
// default standard: it includes only penstock's light GPU headers.
#include "gpu_kernels.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include <penstock/cuda/cuda_error.hpp>

namespace penstock_bench::gpu {
namespace {

void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    throw penstock::cuda::cuda_error(static_cast<int>(status), call);
  }
}

// In a destructor: a failure is ignored (a benchmark's result is already
// known to be wrong by then, and throwing would terminate).
void ignore(cudaError_t) noexcept {}

constexpr unsigned tiny_threads = static_cast<unsigned>(tiny_elements);

// Every thread spins until `cycles` cycles of its SM's clock have passed, then
// writes how many it saw (so the spin has an observable result).
__global__ void spin_kernel(float* out, long long cycles) {
  const long long start = clock64();
  long long elapsed = 0;
  while (elapsed < cycles) elapsed = clock64() - start;
  out[blockIdx.x * blockDim.x + threadIdx.x] = static_cast<float>(elapsed);
}

__global__ void seed_kernel(float* out, unsigned n) {
  if (threadIdx.x < n) out[threadIdx.x] = 0.0f;
}

__global__ void increment_kernel(const float* in, float* out, unsigned n) {
  if (threadIdx.x < n) out[threadIdx.x] = in[threadIdx.x] + 1.0f;
}

void launch_spin(float* out, long long cycles, cudaStream_t stream) {
  spin_kernel<<<spin_blocks, spin_threads, 0, stream>>>(out, cycles);
  check(cudaGetLastError(), "spin_kernel<<<...>>>");
}
void launch_seed(float* out, cudaStream_t stream) {
  seed_kernel<<<1, tiny_threads, 0, stream>>>(out, tiny_threads);
  check(cudaGetLastError(), "seed_kernel<<<...>>>");
}
void launch_increment(const float* in, float* out, cudaStream_t stream) {
  increment_kernel<<<1, tiny_threads, 0, stream>>>(in, out, tiny_threads);
  check(cudaGetLastError(), "increment_kernel<<<...>>>");
}

cudaStream_t new_stream() {
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return stream;
}

float* new_floats(std::size_t n) {
  void* p = nullptr;
  check(cudaMalloc(&p, n * sizeof(float)), "cudaMalloc");
  return static_cast<float*>(p);
}

}  // namespace

long long cycles_per_millisecond() {
  int khz = 0;
  check(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0), "cudaDeviceGetAttribute(cudaDevAttrClockRate)");
  return khz;
}

// --- GPU steps ---------------------------------------------------------------

penstock::device_vector<float> spin_step(penstock::gpu_context& ctx, long long cycles) {
  penstock::device_vector<float> out(spin_elements, ctx);
  launch_spin(out.data(), cycles, ctx.stream());
  return out;
}

penstock::device_vector<float> seed_step(penstock::gpu_context& ctx) {
  penstock::device_vector<float> out(tiny_elements, ctx);
  launch_seed(out.data(), ctx.stream());
  return out;
}

penstock::device_vector<float> increment_step(penstock::gpu_context& ctx, const penstock::device_vector<float>& x) {
  penstock::device_vector<float> out(tiny_elements, ctx);
  launch_increment(x.data(), out.data(), ctx.stream());
  return out;
}

// --- raw_independent -----------------------------------------------------------

struct raw_independent::state {
  long long cycles = 0;
  std::vector<cudaStream_t> streams;
  std::vector<cudaEvent_t> done;
  std::vector<float*> outputs;

  ~state() {
    for (auto s : streams) ignore(cudaStreamSynchronize(s));
    for (auto p : outputs) ignore(cudaFree(p));
    for (auto e : done) ignore(cudaEventDestroy(e));
    for (auto s : streams) ignore(cudaStreamDestroy(s));
  }
};

raw_independent::raw_independent(int kernels, long long cycles) : state_(std::make_unique<state>()) {
  state_->cycles = cycles;
  for (int i = 0; i < kernels; ++i) {
    state_->streams.push_back(new_stream());
    cudaEvent_t e = nullptr;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    state_->done.push_back(e);
    state_->outputs.push_back(new_floats(spin_elements));
  }
}

raw_independent::~raw_independent() = default;

void raw_independent::serialized() {
  const cudaStream_t stream = state_->streams.front();
  for (float* out : state_->outputs) launch_spin(out, state_->cycles, stream);
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

void raw_independent::concurrent() {
  const std::size_t k = state_->outputs.size();
  for (std::size_t i = 0; i < k; ++i) launch_spin(state_->outputs[i], state_->cycles, state_->streams[i]);
  for (std::size_t i = 1; i < k; ++i) {
    check(cudaEventRecord(state_->done[i], state_->streams[i]), "cudaEventRecord");
    check(cudaStreamWaitEvent(state_->streams[0], state_->done[i], 0), "cudaStreamWaitEvent");
  }
  check(cudaStreamSynchronize(state_->streams[0]), "cudaStreamSynchronize");
}

// --- raw_chain -----------------------------------------------------------------

struct raw_chain::state {
  std::size_t kernels = 0;
  cudaStream_t stream = nullptr;
  float* buffers[2] = {nullptr, nullptr};
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;

  // The chain, enqueued on `stream` (or recorded into a graph while it is
  // being captured).
  void enqueue() const {
    launch_seed(buffers[0], stream);
    for (std::size_t i = 1; i < kernels; ++i) launch_increment(buffers[(i - 1) % 2], buffers[i % 2], stream);
  }

  ~state() {
    if (stream != nullptr) ignore(cudaStreamSynchronize(stream));
    if (exec != nullptr) ignore(cudaGraphExecDestroy(exec));
    if (graph != nullptr) ignore(cudaGraphDestroy(graph));
    for (float* b : buffers) ignore(cudaFree(b));
    if (stream != nullptr) ignore(cudaStreamDestroy(stream));
  }
};

raw_chain::raw_chain(std::size_t kernels) : state_(std::make_unique<state>()) {
  state_->kernels = std::max<std::size_t>(kernels, 1);
  state_->stream = new_stream();
  state_->buffers[0] = new_floats(tiny_elements);
  state_->buffers[1] = new_floats(tiny_elements);
}

raw_chain::~raw_chain() = default;

void raw_chain::launches() {
  state_->enqueue();
  check(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize");
}

void raw_chain::graph() {
  if (state_->exec == nullptr) {
    check(cudaStreamBeginCapture(state_->stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      state_->enqueue();
    } catch (...) {
      cudaGraph_t abandoned = nullptr;
      ignore(cudaStreamEndCapture(state_->stream, &abandoned));
      if (abandoned != nullptr) ignore(cudaGraphDestroy(abandoned));
      throw;
    }
    check(cudaStreamEndCapture(state_->stream, &state_->graph), "cudaStreamEndCapture");
    check(cudaGraphInstantiate(&state_->exec, state_->graph, 0), "cudaGraphInstantiate");
    check(cudaGraphUpload(state_->exec, state_->stream), "cudaGraphUpload");
  }
  check(cudaGraphLaunch(state_->exec, state_->stream), "cudaGraphLaunch");
  check(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize");
}

float raw_chain::last_value() {
  float value = -1.0f;
  check(cudaMemcpyAsync(&value, state_->buffers[(state_->kernels - 1) % 2], sizeof(float), cudaMemcpyDeviceToHost,
                        state_->stream),
        "cudaMemcpyAsync(device to host)");
  check(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize");
  return value;
}

}  // namespace penstock_bench::gpu
