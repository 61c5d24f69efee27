// The host backend of GPU steps, and the choice of backend for a run.
#include "gpu_runtime.hpp"

#include <atomic>
#include <stdexcept>
#include <string>
#include <utility>

namespace penstock::detail::r1 {

namespace {

// The host backend's memory, counting the copies made into and out of it.
class counted_host_memory final : public gpu_memory_resource {
 public:
  [[nodiscard]] gpu_backend backend() const noexcept override { return gpu_backend::host; }
  void* allocate(std::size_t bytes, CUstream_st* stream) override { return host().allocate(bytes, stream); }
  void deallocate(void* p, std::size_t bytes, CUstream_st* stream) noexcept override {
    host().deallocate(p, bytes, stream);
  }
  void copy_from_host(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) override {
    copies_.count_to_device();
    host().copy_from_host(destination, source, bytes, stream);
  }
  void copy_to_host(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) override {
    copies_.count_to_host();
    host().copy_to_host(destination, source, bytes, stream);
  }
  void copy_within(void* destination, const void* source, std::size_t bytes, CUstream_st* stream) override {
    host().copy_within(destination, source, bytes, stream);
  }
  [[nodiscard]] gpu_runtime::copy_counts counts() const noexcept { return copies_.counts(); }

 private:
  static gpu_memory_resource& host() noexcept { return host_memory_resource(); }
  copy_counter copies_;
};

class host_gpu_runtime final : public gpu_runtime {
 public:
  explicit host_gpu_runtime(std::string why) : why_(std::move(why)) {}
  [[nodiscard]] gpu_backend backend() const noexcept override { return gpu_backend::host; }
  [[nodiscard]] int device() const noexcept override { return -1; }
  [[nodiscard]] std::string_view why_no_device() const noexcept override { return why_; }
  [[nodiscard]] gpu_memory_resource& memory() noexcept override { return memory_; }
  // Steps run synchronously here: nothing to order (never called).
  CUstream_st* begin_step(std::uint32_t, std::span<const std::uint32_t>) override { return nullptr; }
  void end_step(std::uint32_t, void (*done)(void*), void* data) override { done(data); }
  void mark_ready(std::uint32_t, CUstream_st*) override {}
  void wait_for(std::uint32_t, CUstream_st*) override {}
  void check_step(std::uint32_t) override {}
  void wait_step(std::uint32_t) override {}
  void copy_completed_values(bool) noexcept override {}
  [[nodiscard]] std::uint64_t host_synchronizations() const noexcept override { return 0; }
  [[nodiscard]] copy_counts copies() const noexcept override { return memory_.counts(); }

 private:
  std::string why_;
  counted_host_memory memory_;
};

std::atomic<bool> host_gpu_code_linked{false};

}  // namespace

void register_host_gpu_code() noexcept { host_gpu_code_linked.store(true, std::memory_order_relaxed); }

std::unique_ptr<gpu_runtime> make_gpu_runtime(std::optional<gpu_backend> requested, std::size_t nodes) {
#ifdef PENSTOCK_RUNTIME_WITH_CUDA
  if (requested == gpu_backend::host) return std::make_unique<host_gpu_runtime>("the host backend was asked for");
  if (!requested && host_gpu_code_linked.load(std::memory_order_relaxed)) {
    return std::make_unique<host_gpu_runtime>(
        "this program's GPU steps are compiled for Thrust's TBB backend (penstock::thrust_tbb)");
  }
  std::string why = cuda_unavailable_reason();
  if (why.empty()) return make_cuda_gpu_runtime(nodes);
  if (requested == gpu_backend::cuda) throw std::invalid_argument("the CUDA backend was asked for, but " + why);
  return std::make_unique<host_gpu_runtime>(std::move(why));
#else
  (void)nodes;
  const std::string why = "this penstock was built without CUDA (PENSTOCK_CUDA=OFF, or no CUDA toolkit found)";
  if (requested == gpu_backend::cuda) throw std::invalid_argument("the CUDA backend was asked for, but " + why);
  return std::make_unique<host_gpu_runtime>(why);
#endif
}

}  // namespace penstock::detail::r1
