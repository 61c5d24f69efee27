// GPU steps (.on(ps::gpu)) end to end, on the backend the step code in
// steps.inl was compiled for: Thrust on oneTBB in every build (CI included),
// CUDA in the device test binary (skipped where there is no device).
// Checks the values of CPU -> GPU -> GPU -> CPU chains, independent GPU
// steps, a moved GPU input, caching of GPU values (and a cache hit feeding a
// GPU step), the CPU fallback, the errors that name the step, and the
// host-synchronization and copy counts (copies only where an edge crosses).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <penstock/penstock.hpp>

#include "../scratch_directory.hpp"
#include "steps.hpp"

namespace ps = penstock;
namespace gs = gpu_steps;

namespace {

std::vector<float> ramp(int n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 1.0f);
  return v;
}

double total_on_cpu(const std::vector<float>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

class gpu_steps_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = gs::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  }
  static ps::run_options options() {
    ps::run_options o;
    o.threads = 2;
    o.gpu = gs::compiled_backend();
    return o;
  }
  static ps::run_options cached_in(const std::filesystem::path& dir) {
    ps::run_options o = options();
    o.cache.enabled = true;
    o.cache.directory = dir.string();
    return o;
  }
};

TEST_F(gpu_steps_test, cpu_to_gpu_to_cpu_chain_gives_the_values_of_the_same_work_on_the_cpu) {
  auto n = ps::param<int>("n", 1000);
  auto x = ps::step<"ramp">(ramp)(n);
  auto y = ps::step<"affine">(gs::affine).on(ps::gpu)(x, 2.0f, 1.0f);  // std::vector uploaded
  auto s = ps::step<"sorted">(gs::sorted).on(ps::gpu)(y);
  auto gpu_total = ps::step<"sum">(gs::sum).on(ps::gpu)(s);
  auto cpu_total = ps::step<"total_on_cpu">(total_on_cpu)(s);  // device_vector downloaded
  const auto p = ps::pipeline<"chain">(gpu_total, cpu_total);
  const auto r = p.run(options());
  ASSERT_TRUE(r.ok()) << r.report().summary();
  const double expected = 2.0 * (1000.0 * 1001.0 / 2.0) + 1000.0;
  EXPECT_DOUBLE_EQ(r.value(gpu_total), expected);
  EXPECT_DOUBLE_EQ(r.value(cpu_total), expected);
  ASSERT_TRUE(r.report().gpu.has_value());
  EXPECT_EQ(*r.report().gpu, gs::compiled_backend());
  EXPECT_NE(r.report().summary().find("GPU steps on"), std::string::npos) << r.report().summary();
}

TEST_F(gpu_steps_test, independent_gpu_steps_meet_in_one_gpu_step) {
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 4096));
  auto a = ps::step<"a">(gs::affine).on(ps::gpu)(x, 1.0f, 0.0f);
  auto b = ps::step<"b">(gs::affine).on(ps::gpu)(x, -1.0f, 2.0f);
  auto c = ps::step<"c">(gs::affine).on(ps::gpu)(x, 0.5f, 0.0f);
  auto ab = ps::step<"ab">(gs::add).on(ps::gpu)(a, b);  // x - x + 2 = 2
  auto abc = ps::step<"abc">(gs::add).on(ps::gpu)(ab, c);
  auto total = ps::step<"total">(gs::sum).on(ps::gpu)(abc);
  const auto r = ps::pipeline<"fan">(total).run(options());
  ASSERT_TRUE(r.ok()) << r.report().summary();
  EXPECT_DOUBLE_EQ(r.value(total), 2.0 * 4096 + 0.5 * (4096.0 * 4097.0 / 2.0));
}

TEST_F(gpu_steps_test, a_gpu_value_moved_into_its_last_consumer_is_not_seen_by_the_others) {
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 100));
  auto y = ps::step<"affine">(gs::affine).on(ps::gpu)(x, 1.0f, 0.0f);
  auto squared = ps::step<"square">(gs::square_in_place).on(ps::gpu)(y);
  auto plain = ps::step<"plain">(gs::sum).on(ps::gpu)(y);
  auto squares = ps::step<"squares">(gs::sum).on(ps::gpu)(squared);
  const auto r = ps::pipeline<"moves">(plain, squares).run(options());
  ASSERT_TRUE(r.ok()) << r.report().summary();
  EXPECT_DOUBLE_EQ(r.value(plain), 5050.0);
  EXPECT_DOUBLE_EQ(r.value(squares), 100.0 * 101.0 * 201.0 / 6.0);
}

TEST_F(gpu_steps_test, an_output_device_vector_reads_back_on_the_host) {
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 5));
  auto y = ps::step<"affine">(gs::affine).on(ps::gpu)(x, 10.0f, 0.0f);
  const auto r = ps::pipeline<"out">(y).run(options());
  ASSERT_TRUE(r.ok()) << r.report().summary();
  EXPECT_EQ(r.value(y).to_host(), (std::vector<float>{10, 20, 30, 40, 50}));
}

TEST_F(gpu_steps_test, gpu_values_are_cached_and_a_cached_value_feeds_a_gpu_step) {
  penstock_test::scratch_directory dir("penstock-gpu-steps");
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 300));
  auto y = ps::step<"affine">(gs::affine).on(ps::gpu)(x, 2.0f, 0.0f);
  auto s = ps::step<"sorted">(gs::sorted).on(ps::gpu)(y);
  auto total = ps::step<"sum">(gs::sum).on(ps::gpu)(s);
  const auto p = ps::pipeline<"cached">(total);
  const auto first = p.run(cached_in(dir.path()));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  EXPECT_EQ(first.report().cache_hits(), 0u);
  const auto second = p.run(cached_in(dir.path()));
  ASSERT_TRUE(second.ok()) << second.report().summary();
  EXPECT_EQ(second.report().cache_hits(), 4u) << second.report().summary();
  EXPECT_DOUBLE_EQ(second.value(total), first.value(total));
  // "sorted" and "sum" run again on "affine"'s cached value (read back into
  // host memory, uploaded where the backend is CUDA).
  auto again = cached_in(dir.path());
  again.cache.rerun = {"sorted"};
  const auto third = p.run(again);
  ASSERT_TRUE(third.ok()) << third.report().summary();
  EXPECT_TRUE(third.report().find("affine")->cache_hit);
  EXPECT_FALSE(third.report().find("sorted")->cache_hit);
  EXPECT_DOUBLE_EQ(third.value(total), 2.0 * 300.0 * 301.0 / 2.0);
  // The cached value (in host memory) is uploaded for "sorted" on CUDA, and
  // read in place on the host backend; "sorted" and "sum" are stored (one
  // copy to the host: "sum" is a double, not a GPU value).
  EXPECT_EQ(third.report().gpu_copies_to_device, gs::compiled_backend() == ps::gpu_backend::cuda ? 1u : 0u);
  EXPECT_EQ(third.report().gpu_copies_to_host, 1u);
}

TEST_F(gpu_steps_test, a_cached_gpu_value_is_uploaded_once_for_all_its_gpu_consumers) {
  penstock_test::scratch_directory dir("penstock-gpu-steps");
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 200));
  auto y = ps::step<"affine">(gs::affine).on(ps::gpu)(x, 1.0f, 0.0f);
  auto s1 = ps::step<"s1">(gs::sum).on(ps::gpu)(y);
  auto s2 = ps::step<"s2">(gs::sum).on(ps::gpu)(y);
  auto sorted = ps::step<"sorted">(gs::sorted).on(ps::gpu)(y);
  auto s3 = ps::step<"s3">(gs::sum).on(ps::gpu)(sorted);
  const auto p = ps::pipeline<"twins">(s1, s2, s3);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  auto again = cached_in(dir.path());
  again.cache.rerun = {"s1", "s2", "sorted"};  // "affine" is a hit read by three GPU steps
  const auto r = p.run(again);
  ASSERT_TRUE(r.ok()) << r.report().summary();
  EXPECT_TRUE(r.report().find("affine")->cache_hit);
  EXPECT_DOUBLE_EQ(r.value(s1), 20100.0);
  EXPECT_DOUBLE_EQ(r.value(s2), 20100.0);
  EXPECT_DOUBLE_EQ(r.value(s3), 20100.0);
  EXPECT_EQ(r.report().gpu_copies_to_device, gs::compiled_backend() == ps::gpu_backend::cuda ? 1u : 0u);
}

TEST_F(gpu_steps_test, a_step_that_needs_cuda_runs_its_fallback_where_there_is_no_device) {
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 10));
  auto y = ps::step<"times_three">(gs::times_three).on(ps::gpu).fallback(gs::times_three_on_cpu)(x);
  auto total = ps::step<"sum">(gs::sum).on(ps::gpu)(y);
  const auto r = ps::pipeline<"fallback">(total).run(options());
  ASSERT_TRUE(r.ok()) << r.report().summary();
  EXPECT_DOUBLE_EQ(r.value(total), 3.0 * 55.0);
}

TEST_F(gpu_steps_test, a_step_that_needs_cuda_fails_naming_itself_where_there_is_no_device) {
  if (gs::compiled_backend() == ps::gpu_backend::cuda) GTEST_SKIP() << "there is a CUDA device";
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 10));
  auto y = ps::step<"times_three">(gs::times_three).on(ps::gpu)(x);
  auto total = ps::step<"sum">(gs::sum).on(ps::gpu)(y);
  const auto r = ps::pipeline<"no_fallback">(total).run(options());
  ASSERT_FALSE(r.ok());
  const auto* failed = r.report().find("times_three");
  EXPECT_EQ(failed->status, ps::step_status::failed);
  EXPECT_NE(failed->error.find("step 'times_three'"), std::string::npos) << failed->error;
  EXPECT_NE(failed->error.find("no CUDA device"), std::string::npos) << failed->error;
  EXPECT_NE(failed->error.find(".fallback"), std::string::npos) << failed->error;
  EXPECT_EQ(r.report().find("sum")->status, ps::step_status::skipped);
}

TEST_F(gpu_steps_test, a_failing_gpu_step_fails_its_run_and_skips_its_consumers) {
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 10));
  auto shorter = ps::step<"shorter">(ramp)(ps::param<int>("m", 9));
  auto both = ps::step<"add">(gs::add).on(ps::gpu)(x, shorter);
  auto total = ps::step<"sum">(gs::sum).on(ps::gpu)(both);
  auto on_cpu = ps::step<"on_cpu">(total_on_cpu)(both);
  const auto r = ps::pipeline<"mismatch">(total, on_cpu).run(options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.report().find("add")->status, ps::step_status::failed);
  EXPECT_NE(r.report().find("add")->error.find("10 and 9 values"), std::string::npos);
  EXPECT_EQ(r.report().find("sum")->status, ps::step_status::skipped);
  EXPECT_EQ(r.report().find("on_cpu")->status, ps::step_status::skipped);
}

TEST_F(gpu_steps_test, chained_gpu_steps_copy_and_wait_only_where_an_edge_crosses_to_the_cpu) {
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 64));
  auto a = ps::step<"a">(gs::affine).on(ps::gpu)(x, 2.0f, 0.0f);
  auto b = ps::step<"b">(gs::affine).on(ps::gpu)(a, 2.0f, 0.0f);
  auto c = ps::step<"c">(gs::affine).on(ps::gpu)(b, 2.0f, 0.0f);
  const auto gpu_only = ps::pipeline<"gpu_only">(c).run(options());
  ASSERT_TRUE(gpu_only.ok()) << gpu_only.report().summary();
  EXPECT_EQ(gpu_only.report().gpu_host_synchronizations, 0u);
  // Copies only where an edge crosses: ramp -> a.
  EXPECT_EQ(gpu_only.report().gpu_copies_to_device, 1u);
  EXPECT_EQ(gpu_only.report().gpu_copies_to_host, 0u);
  auto on_cpu = ps::step<"on_cpu">(total_on_cpu)(c);
  const auto with_cpu = ps::pipeline<"with_cpu">(on_cpu).run(options());
  ASSERT_TRUE(with_cpu.ok()) << with_cpu.report().summary();
  EXPECT_DOUBLE_EQ(with_cpu.value(on_cpu), 8.0 * 64.0 * 65.0 / 2.0);
  EXPECT_EQ(with_cpu.report().gpu_copies_to_device, 1u);  // ramp -> a
  EXPECT_EQ(with_cpu.report().gpu_copies_to_host, 1u);    // c -> on_cpu
  // The host backend never waits; on CUDA the one GPU -> CPU edge does.
  EXPECT_EQ(with_cpu.report().gpu_host_synchronizations, gs::compiled_backend() == ps::gpu_backend::cuda ? 1u : 0u);
}

TEST(gpu_backend_choice, asking_for_cuda_where_there_is_none_fails_before_any_step_runs) {
  if (gs::compiled_backend() == ps::gpu_backend::cuda && gs::unavailable_reason().empty()) {
    GTEST_SKIP() << "there is a CUDA device";
  }
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 10));
  auto y = ps::step<"affine">(gs::affine).on(ps::gpu)(x, 1.0f, 0.0f);
  ps::run_options o;
  o.gpu = ps::gpu_backend::cuda;
  try {
    (void)ps::pipeline<"ask_cuda">(y).run(o);
    FAIL() << "the run started without a CUDA device";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("the CUDA backend was asked for"), std::string::npos) << e.what();
  }
}

// What a CUDA build does on a machine without a device (CI): the backend
// chosen by default is the host, where CUDA code runs its fallback, or fails
// naming the step and saying why there is no device.
TEST(gpu_backend_choice, without_a_device_cuda_code_runs_its_fallback_or_fails_saying_why) {
  if (gs::compiled_backend() == ps::gpu_backend::cuda && gs::unavailable_reason().empty()) {
    GTEST_SKIP() << "there is a CUDA device";
  }
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 10));
  auto with = ps::step<"with_fallback">(gs::times_three).on(ps::gpu).fallback(gs::times_three_on_cpu)(x);
  auto total = ps::step<"total">(total_on_cpu)(with);
  const auto r = ps::pipeline<"default_backend">(total).run();
  ASSERT_TRUE(r.ok()) << r.report().summary();
  EXPECT_EQ(r.report().gpu, ps::gpu_backend::host);
  EXPECT_DOUBLE_EQ(r.value(total), 165.0);

  auto without = ps::step<"without_fallback">(gs::times_three).on(ps::gpu)(x);
  const auto failed = ps::pipeline<"no_fallback">(without).run();
  ASSERT_FALSE(failed.ok());
  const std::string& error = failed.report().find("without_fallback")->error;
  EXPECT_NE(error.find("step 'without_fallback' runs code compiled for CUDA, but this run has no CUDA device"),
            std::string::npos)
      << error;
}

TEST(gpu_backend_choice, a_pipeline_without_gpu_steps_reports_no_gpu_backend) {
  auto x = ps::step<"ramp">(ramp)(ps::param<int>("n", 10));
  const auto r = ps::pipeline<"cpu_only">(x).run();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.report().gpu.has_value());
}

TEST(device_vector, copies_to_and_from_host_memory_and_moves) {
  const std::vector<float> values{1, 2, 3};
  auto v = ps::device_vector<float>::from_host(values.data(), values.size(), ps::host_memory_resource(), nullptr);
  EXPECT_TRUE(v.on_host());
  EXPECT_EQ(v.to_host(), values);
  ps::device_vector<float> w(std::move(v));
  EXPECT_TRUE(v.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(v.data(), nullptr);
  EXPECT_EQ(w.size(), 3u);
  v = std::move(w);
  EXPECT_EQ(v.to_host(), values);
  EXPECT_TRUE(ps::device_vector<float>().to_host().empty());
}

TEST(device_vector, a_cached_device_vector_is_stored_as_the_bytes_of_its_std_vector) {
  const std::vector<float> values{0.5f, 1.5f};
  auto v = ps::device_vector<float>::from_host(values.data(), values.size(), ps::host_memory_resource(), nullptr);
  EXPECT_EQ(ps::value_traits<ps::device_vector<float>>::hash(v), ps::value_traits<std::vector<float>>::hash(values));
  std::stringstream bytes;
  (void)ps::value_traits<ps::device_vector<float>>::save(bytes, v);
  EXPECT_EQ(ps::value_traits<ps::device_vector<float>>::load(bytes).to_host(), values);
}

}  // namespace
