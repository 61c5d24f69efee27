// The GPU executor on a CUDA device: independent GPU steps overlap on the
// device, chained GPU steps run in order without the host waiting between
// them, and caching a GPU value does not hold back the GPU steps after it.
// Skipped, saying why, where there is no device (CI). The logic of GPU steps
// on both backends is in tests/gpu_steps/.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <vector>

#include <penstock/cuda/device.hpp>
#include <penstock/penstock.hpp>

#include "../scratch_directory.hpp"
#include "spin_steps.hpp"

namespace ps = penstock;
namespace pc = penstock_test::cuda;

namespace {

constexpr std::int64_t spin_cycles = 20'000'000;  // about 10 ms at 2 GHz

class gpu_executor : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = ps::cuda::no_device_reason(); !why.empty()) GTEST_SKIP() << why;
  }
  static ps::run_options on_cuda() {
    ps::run_options o;
    o.gpu = ps::gpu_backend::cuda;
    return o;
  }
};

std::vector<std::uint64_t> times_of(const ps::device_vector<std::uint64_t>& v) { return v.to_host(); }

TEST_F(gpu_executor, independent_gpu_steps_overlap_on_the_device) {
  auto cycles = ps::param<std::int64_t>("cycles", spin_cycles);
  auto a = ps::step<"a">(pc::spin).on(ps::gpu)(cycles);
  auto b = ps::step<"b">(pc::spin).on(ps::gpu)(cycles);
  auto ta = ps::step<"ta">(times_of)(a);
  auto tb = ps::step<"tb">(times_of)(b);
  const auto r = ps::pipeline<"overlap">(ta, tb).run(on_cuda());
  ASSERT_TRUE(r.ok()) << r.report().summary();
  const auto& x = r.value(ta);
  const auto& y = r.value(tb);
  // Each started before the other ended.
  EXPECT_LT(std::max(x[0], y[0]), std::min(x[1], y[1]))
      << "a: " << x[0] << ".." << x[1] << ", b: " << y[0] << ".." << y[1];
}

TEST_F(gpu_executor, chained_gpu_steps_run_in_order_without_the_host_waiting_between_them) {
  auto cycles = ps::param<std::int64_t>("cycles", spin_cycles / 4);
  auto a = ps::step<"a">(pc::spin).on(ps::gpu)(cycles);
  auto b = ps::step<"b">(pc::spin_after).on(ps::gpu)(a, cycles);
  auto c = ps::step<"c">(pc::spin_after).on(ps::gpu)(b, cycles);
  auto d = ps::step<"d">(pc::spin_after).on(ps::gpu)(a, cycles);  // a second consumer, on another stream
  const auto r = ps::pipeline<"chain">(a, b, c, d).run(on_cuda());
  ASSERT_TRUE(r.ok()) << r.report().summary();
  EXPECT_EQ(r.report().gpu_host_synchronizations, 0u);
  const auto ta = r.value(a).to_host();
  const auto tb = r.value(b).to_host();
  const auto tc = r.value(c).to_host();
  const auto td = r.value(d).to_host();
  EXPECT_LE(ta[1], tb[0]);
  EXPECT_LE(tb[1], tc[0]);
  EXPECT_LE(ta[1], td[0]);
}

TEST_F(gpu_executor, caching_gpu_values_copies_them_to_the_host_and_a_rerun_reads_them_back) {
  penstock_test::scratch_directory dir("penstock-gpu-executor");
  auto cycles = ps::param<std::int64_t>("cycles", spin_cycles / 4);
  auto a = ps::step<"a">(pc::spin).on(ps::gpu)(cycles);
  auto b = ps::step<"b">(pc::spin_after).on(ps::gpu)(a, cycles);
  auto tb = ps::step<"tb">(times_of)(b);
  const auto p = ps::pipeline<"cached">(tb);
  auto o = on_cuda();
  o.cache.enabled = true;
  o.cache.directory = dir.path().string();
  const auto first = p.run(o);
  ASSERT_TRUE(first.ok()) << first.report().summary();
  // a, b: one copy each for the cache; b -> tb: one for the CPU step.
  EXPECT_EQ(first.report().gpu_host_synchronizations, 3u);
  const auto second = p.run(o);
  ASSERT_TRUE(second.ok()) << second.report().summary();
  EXPECT_EQ(second.report().cache_hits(), 3u);
  EXPECT_EQ(second.value(tb), first.value(tb));
}

}  // namespace
