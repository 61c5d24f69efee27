// The step cache end to end, in one process (tests/cache_processes.sh covers
// several processes, kill -9 and the command line): hits on a rerun, exactly
// the expected steps rerunning when a parameter changes, early cutoff, lazy
// loading (counted deserializations), .cache(ps::never), --rerun, key
// sensitivity, and damaged cache content reported and recomputed.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <sqlite3.h>

#include <penstock/detail/slot.hpp>
#include <penstock/penstock.hpp>

#include "scratch_directory.hpp"

namespace ps = penstock;
namespace fs = std::filesystem;

namespace {

using penstock_test::scratch_directory;

// A value that counts how often cereal reads it back.
struct counted_value {
  inline static std::atomic<int> loads{0};
  long value = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(value);
    if constexpr (Archive::is_loading::value) ++loads;
  }
  friend bool operator==(const counted_value&, const counted_value&) = default;
};

// How many times each step body ran.
struct run_counts {
  std::atomic<int> source{0}, parity{0}, scale{0}, report{0};
};

std::set<std::string> computed(const ps::run_report& report) {
  std::set<std::string> out;
  for (const auto& s : report.steps)
    if (s.status == ps::step_status::succeeded && !s.cache_hit) out.insert(s.name);
  return out;
}

std::set<std::string> hits(const ps::run_report& report) {
  std::set<std::string> out;
  for (const auto& s : report.steps)
    if (s.cache_hit) out.insert(s.name);
  return out;
}

// n ─ source ─ parity ─ scale ─ report
//                       factor ┘
// parity(x) = x % 2: changing n from 3 to 5 changes source's output but not
// parity's, so scale and report hit again (early cutoff).
auto make_pipeline(run_counts& counts) {
  auto n = ps::param<long>("n", 3);
  auto factor = ps::param<long>("factor", 10);
  auto source = ps::step<"source">([&counts](long v) {
    ++counts.source;
    return counted_value{v * 7};
  })(n);
  auto parity = ps::step<"parity">([&counts](const counted_value& v) {
    ++counts.parity;
    return counted_value{v.value % 2};
  })(source);
  auto scale = ps::step<"scale">([&counts](const counted_value& v, long f) {
    ++counts.scale;
    return counted_value{v.value * f + 1};
  })(parity, factor);
  auto report = ps::step<"report">([&counts](const counted_value& v) {
    ++counts.report;
    return "value " + std::to_string(v.value);
  })(scale);
  return std::pair{ps::pipeline<"cached">(report), report};
}

ps::run_options cached_in(const fs::path& dir, std::vector<std::pair<std::string, std::string>> params = {}) {
  ps::run_options options;
  options.threads = 2;
  options.params = std::move(params);
  options.cache.enabled = true;
  options.cache.directory = dir.string();
  return options;
}

}  // namespace

TEST(cache, a_second_run_takes_every_step_from_the_cache) {
  scratch_directory dir;
  run_counts counts;
  const auto [p, out] = make_pipeline(counts);
  const auto first = p.run(cached_in(dir.path()));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  EXPECT_EQ(first.value(out), "value 11");
  EXPECT_EQ(computed(first.report()), (std::set<std::string>{"source", "parity", "scale", "report"}));
  EXPECT_FALSE(first.report().run_id.empty());

  const auto second = p.run(cached_in(dir.path()));
  ASSERT_TRUE(second.ok()) << second.report().summary();
  EXPECT_EQ(second.value(out), "value 11");
  EXPECT_EQ(hits(second.report()), (std::set<std::string>{"source", "parity", "scale", "report"}));
  EXPECT_EQ(counts.source + counts.parity + counts.scale + counts.report, 4);
  for (const auto& s : second.report().steps) {
    EXPECT_EQ(s.attempts, 0u) << s.name;
    ASSERT_TRUE(s.key.has_value()) << s.name;
    EXPECT_EQ(s.key, first.report().find(s.name)->key) << s.name;
  }
}

TEST(cache, without_cache_options_nothing_is_read_or_written) {
  scratch_directory dir;
  run_counts counts;
  const auto [p, out] = make_pipeline(counts);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  auto options = cached_in(dir.path());
  options.cache.enabled = false;
  const auto again = p.run(options);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(hits(again.report()).empty());
  EXPECT_EQ(counts.report, 2);
}

TEST(cache, changing_one_parameter_reruns_exactly_its_dependents) {
  scratch_directory dir;
  run_counts counts;
  const auto [p, out] = make_pipeline(counts);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  const auto changed = p.run(cached_in(dir.path(), {{"factor", "20"}}));
  ASSERT_TRUE(changed.ok()) << changed.report().summary();
  EXPECT_EQ(changed.value(out), "value 21");
  EXPECT_EQ(computed(changed.report()), (std::set<std::string>{"scale", "report"}));
  EXPECT_EQ(hits(changed.report()), (std::set<std::string>{"source", "parity"}));
  // And back: both parameter values are cached now.
  const auto back = p.run(cached_in(dir.path()));
  EXPECT_EQ(back.value(out), "value 11");
  EXPECT_EQ(hits(back.report()).size(), 4u);
}

TEST(cache, a_rerun_that_reproduces_its_output_leaves_its_dependents_cached) {
  scratch_directory dir;
  run_counts counts;
  const auto [p, out] = make_pipeline(counts);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  // n: 3 → 5 changes source (21 → 35) but not parity (1 → 1).
  const auto cutoff = p.run(cached_in(dir.path(), {{"n", "5"}}));
  ASSERT_TRUE(cutoff.ok()) << cutoff.report().summary();
  EXPECT_EQ(cutoff.value(out), "value 11");
  EXPECT_EQ(computed(cutoff.report()), (std::set<std::string>{"source", "parity"}));
  EXPECT_EQ(hits(cutoff.report()), (std::set<std::string>{"scale", "report"}));
  EXPECT_EQ(counts.scale, 1);
  EXPECT_EQ(counts.report, 1);
}

TEST(cache, a_fully_cached_run_deserializes_only_the_outputs) {
  scratch_directory dir;
  run_counts counts;
  auto n = ps::param<long>("n", 3);
  auto a = ps::step<"a">([](long v) { return counted_value{v}; })(n);
  auto b = ps::step<"b">([](const counted_value& v) { return counted_value{v.value + 1}; })(a);
  auto c = ps::step<"c">([](const counted_value& v) { return counted_value{v.value * 2}; })(b);
  auto d = ps::step<"d">([](const counted_value& v) { return counted_value{v.value - 1}; })(c);
  const auto p = ps::pipeline<"lazy">(d);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());

  counted_value::loads = 0;
  const auto again = p.run(cached_in(dir.path()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(hits(again.report()).size(), 4u);
  EXPECT_EQ(again.value(d), counted_value{7});
  EXPECT_EQ(counted_value::loads, 1) << "only d, the pipeline's output, is read back";

  // A version bump on d reruns d alone: its input c is read, a and b are not.
  auto d2 = ps::step<"d">([](const counted_value& v) { return counted_value{v.value - 1}; }).version(2)(c);
  const auto p2 = ps::pipeline<"lazy">(d2);
  counted_value::loads = 0;
  const auto bumped = p2.run(cached_in(dir.path()));
  ASSERT_TRUE(bumped.ok());
  EXPECT_EQ(computed(bumped.report()), (std::set<std::string>{"d"}));
  EXPECT_EQ(counted_value::loads, 1) << "only c, d's input, is read back";
}

TEST(cache, a_never_cached_step_always_runs_and_its_dependents_still_hit) {
  scratch_directory dir;
  std::atomic<int> clock_runs{0};
  auto tick = ps::step<"tick">([&clock_runs] {
                ++clock_runs;
                return 42L;  // a "non-deterministic" step that happens to agree
              }).cache(ps::never)();
  auto use = ps::step<"use">([](long v) { return v + 1; })(tick);
  const auto p = ps::pipeline<"never">(use);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  const auto again = p.run(cached_in(dir.path()));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(clock_runs, 2);
  EXPECT_EQ(computed(again.report()), (std::set<std::string>{"tick"}));
  EXPECT_EQ(hits(again.report()), (std::set<std::string>{"use"}));
  EXPECT_EQ(again.value(use), 43);
}

TEST(cache, rerun_forces_a_step_and_its_dependents) {
  scratch_directory dir;
  run_counts counts;
  const auto [p, out] = make_pipeline(counts);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  auto options = cached_in(dir.path());
  options.cache.rerun = {"parity"};
  const auto forced = p.run(options);
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ(computed(forced.report()), (std::set<std::string>{"parity", "scale", "report"}));
  EXPECT_EQ(hits(forced.report()), (std::set<std::string>{"source"}));

  options.cache.rerun = {"no_such_step"};
  EXPECT_THROW((void)p.run(options), std::invalid_argument);
}

TEST(cache, keys_depend_on_version_parameters_constants_and_inputs) {
  scratch_directory dir;
  const auto key_of = [&](const auto& pipeline, const std::string& step,
                          std::vector<std::pair<std::string, std::string>> params = {}) {
    auto options = cached_in(dir.path(), std::move(params));
    options.cache.enabled = true;
    const auto result = pipeline.run(options);
    EXPECT_TRUE(result.ok());
    return result.report().find(step)->key.value();
  };
  const auto add = [](long a, long b) { return a + b; };
  auto x = ps::param<long>("x", 1);
  auto base = ps::step<"base">([](long v) { return v; })(x);
  const auto reference = key_of(ps::pipeline<"k">(ps::step<"sum">(add)(base, 2L)), "sum");
  EXPECT_EQ(reference, key_of(ps::pipeline<"k">(ps::step<"sum">(add)(base, 2L)), "sum"));
  EXPECT_NE(reference, key_of(ps::pipeline<"k">(ps::step<"sum">(add)(base, 3L)), "sum")) << "constant";
  EXPECT_NE(reference, key_of(ps::pipeline<"k">(ps::step<"sum">(add).version(1)(base, 2L)), "sum")) << "version";
  EXPECT_NE(reference, key_of(ps::pipeline<"k">(ps::step<"sum">(add)(base, 2L)), "sum", {{"x", "5"}}))
      << "input digest";
  EXPECT_NE(reference, key_of(ps::pipeline<"k">(ps::step<"total">(add)(base, 2L)), "total")) << "step name";
  const auto as_int = [](long a, long b) { return static_cast<int>(a + b); };
  EXPECT_NE(reference, key_of(ps::pipeline<"k">(ps::step<"sum">(as_int)(base, 2L)), "sum")) << "output type";
}

// Damage: each kind is a reported miss (a note on the step), the value is
// recomputed, and the result is right.
class damaged_cache : public ::testing::TestWithParam<const char*> {};

TEST_P(damaged_cache, is_reported_and_recomputed) {
  const std::string damage = GetParam();
  scratch_directory dir;
  run_counts counts;
  const auto [p, out] = make_pipeline(counts);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());

  // Damage every value: the output is read back on the next run. These
  // values are small, so they live in the index rows (cache_inline_max);
  // blob files, if any, get the same damage.
  const auto sql = [&](const char* statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir.path() / "index.sqlite").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, statement, nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << statement << ": " << (error != nullptr ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  };
  if (damage == "flip")
    sql("UPDATE entries SET inline_value = randomblob(length(inline_value)) WHERE length(inline_value) > 0");
  if (damage == "truncate")
    sql("UPDATE entries SET inline_value = substr(inline_value, 1, length(inline_value) / 2) "
        "WHERE length(inline_value) > 0");
  if (damage == "delete") sql("UPDATE entries SET inline_value = NULL");
  std::vector<fs::path> blobs;
  if (fs::exists(dir.path() / "blobs"))
    for (const auto& entry : fs::recursive_directory_iterator(dir.path() / "blobs"))
      if (entry.is_regular_file() && entry.path().filename().string().front() != '.') blobs.push_back(entry.path());
  for (const auto& blob : blobs) {
    fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
    if (damage == "flip") {
      std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
      char c = 0;
      f.seekg(0);
      f.get(c);
      f.seekp(0);
      f.put(static_cast<char>(c ^ 0x5a));
    } else if (damage == "truncate") {
      fs::resize_file(blob, fs::file_size(blob) / 2);
    } else if (damage == "delete") {
      fs::remove(blob);
    }
  }
  if (damage == "index") sql("UPDATE entries SET digest = x'00', size = -5");

  const auto again = p.run(cached_in(dir.path()));
  ASSERT_TRUE(again.ok()) << again.report().summary();
  EXPECT_EQ(again.value(out), "value 11");
  bool noted = false;
  for (const auto& s : again.report().steps) noted = noted || !s.cache_note.empty();
  EXPECT_TRUE(noted) << "the damage is reported";
  EXPECT_GE(counts.report.load(), 2) << "the output was recomputed";
  EXPECT_TRUE(hits(again.report()).empty())
      << "every value was damaged, so none counts as a hit: " << again.report().summary();

  // And the run after that is clean: every step from the cache, no notes.
  const auto healed = p.run(cached_in(dir.path()));
  ASSERT_TRUE(healed.ok());
  EXPECT_EQ(healed.value(out), "value 11");
  EXPECT_EQ(hits(healed.report()).size(), 4u) << healed.report().summary();
  for (const auto& s : healed.report().steps) EXPECT_EQ(s.cache_note, "") << s.name;
}

INSTANTIATE_TEST_SUITE_P(damage, damaged_cache, ::testing::Values("flip", "truncate", "delete", "index"));

// A std::vector<float> output is read straight into its own storage
// (value_traits' contiguous load), its element count apart; 9 MiB, so its
// blob is also hashed on a second thread while it is read. A flipped byte in
// the blob is still a reported miss, and an empty vector still loads.
TEST(cache, a_large_vector_output_loads_straight_into_its_storage) {
  scratch_directory dir;
  std::atomic<int> waves{0};
  auto n = ps::param<long>("n", 9 << 18);  // floats
  auto wave = ps::step<"wave">([&waves](long count) {
    ++waves;
    std::vector<float> v(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 1000) * 0.5f + 1.0f;
    return v;
  })(n);
  auto sum = ps::step<"sum">([](const std::vector<float>& v) {
    double total = 0;
    for (float x : v) total += x;
    return total;
  })(wave);
  const auto p = ps::pipeline<"vectors">(wave, sum);

  const auto first = p.run(cached_in(dir.path()));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  const std::vector<float> expected = first.value(wave);
  ASSERT_EQ(expected.size(), std::size_t{9} << 18);

  const auto again = p.run(cached_in(dir.path()));
  ASSERT_TRUE(again.ok()) << again.report().summary();
  EXPECT_EQ(hits(again.report()).size(), 2u) << again.report().summary();
  EXPECT_EQ(again.value(wave), expected);
  EXPECT_EQ(again.value(sum), first.value(sum));
  EXPECT_EQ(waves.load(), 1);

  std::vector<fs::path> blobs;
  for (const auto& entry : fs::recursive_directory_iterator(dir.path() / "blobs"))
    if (entry.is_regular_file() && entry.path().filename().string().front() != '.') blobs.push_back(entry.path());
  ASSERT_EQ(blobs.size(), 1u) << "the wave's value; the sum lives in its index row";
  fs::permissions(blobs[0], fs::perms::owner_write, fs::perm_options::add);
  {
    std::fstream f(blobs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(5 << 20);
    char c = 0;
    f.get(c);
    f.seekp(5 << 20);
    f.put(static_cast<char>(c ^ 0x01));
  }
  const auto damaged = p.run(cached_in(dir.path()));
  ASSERT_TRUE(damaged.ok()) << damaged.report().summary();
  EXPECT_EQ(damaged.value(wave), expected);
  EXPECT_EQ(waves.load(), 2) << "recomputed";
  EXPECT_NE(damaged.report().steps[0].cache_note.find("does not match its digest"), std::string::npos)
      << damaged.report().steps[0].cache_note;

  const auto empty = p.run(cached_in(dir.path(), {{"n", "0"}}));
  ASSERT_TRUE(empty.ok());
  const auto empty_again = p.run(cached_in(dir.path(), {{"n", "0"}}));
  ASSERT_TRUE(empty_again.ok());
  EXPECT_EQ(hits(empty_again.report()).size(), 2u) << empty_again.report().summary();
  EXPECT_TRUE(empty_again.value(wave).empty());
  EXPECT_EQ(empty_again.value(sum), 0.0);
}

TEST(cache, contiguous_loads_are_offered_for_vectors_of_arithmetic_elements_only) {
  using ps::detail::slot_functions_for;
  EXPECT_NE(slot_functions_for<std::vector<float>>().prepare_contiguous, nullptr);
  EXPECT_NE(slot_functions_for<std::vector<std::uint8_t>>().prepare_contiguous, nullptr);
  EXPECT_EQ(slot_functions_for<std::vector<bool>>().prepare_contiguous, nullptr);
  EXPECT_EQ(slot_functions_for<std::vector<std::string>>().prepare_contiguous, nullptr);
  EXPECT_EQ(slot_functions_for<std::string>().prepare_contiguous, nullptr);
  EXPECT_EQ(slot_functions_for<counted_value>().prepare_contiguous, nullptr);

  const ps::slot_functions f = slot_functions_for<std::vector<double>>();
  alignas(std::optional<std::vector<double>>) std::byte storage[sizeof(std::optional<std::vector<double>>)];
  f.construct(storage);
  std::uint64_t count = 0;
  std::span<std::byte> elements;
  ASSERT_TRUE(f.prepare_contiguous(storage, 8 + 3 * 8, &count, &elements));
  EXPECT_EQ(count, 3u);
  EXPECT_EQ(elements.size(), 24u);
  EXPECT_EQ(elements.data(),
            reinterpret_cast<std::byte*>((*reinterpret_cast<std::optional<std::vector<double>>*>(storage))->data()));
  EXPECT_FALSE(f.prepare_contiguous(storage, 8 + 3 * 8 + 1, &count, &elements)) << "not a whole element";
  EXPECT_FALSE(f.has_value(storage)) << "a refused size leaves the slot empty";
  EXPECT_FALSE(f.prepare_contiguous(storage, 7, &count, &elements)) << "shorter than the count";
  f.destroy(storage);
}

TEST(cache, a_map_reruns_only_the_elements_it_has_not_seen) {
  scratch_directory dir;
  std::atomic<int> calls{0};
  auto shards = ps::param<long>("shards", 1000);
  auto ids = ps::step<"ids">([](long n) {
    std::vector<long> v(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i * 3;
    return v;
  })(shards);
  auto squares = ps::map<"square">([&calls](long x) {
    ++calls;
    return x * x;
  })(ids);
  auto total = ps::step<"total">([](const std::vector<long>& v) {
    long t = 0;
    for (long x : v) t += x;
    return t;
  })(squares);
  const auto p = ps::pipeline<"shards">(total);
  const auto sum_of_squares = [](long n) {
    long t = 0;
    for (long i = 0; i < n; ++i) t += 9 * i * i;
    return t;
  };

  const auto first = p.run(cached_in(dir.path()));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  EXPECT_EQ(first.value(total), sum_of_squares(1000));
  EXPECT_EQ(calls, 1000);
  EXPECT_EQ(first.report().find("square")->elements, 1000u);
  EXPECT_EQ(first.report().find("square")->elements_cached, 0u);

  // One more shard: the map's input changed, so the map runs, but only the
  // new element is computed; the other 1,000 are read from the cache.
  const auto more = p.run(cached_in(dir.path(), {{"shards", "1001"}}));
  ASSERT_TRUE(more.ok()) << more.report().summary();
  EXPECT_EQ(more.value(total), sum_of_squares(1001));
  EXPECT_EQ(calls, 1001);
  const auto* square = more.report().find("square");
  EXPECT_FALSE(square->cache_hit);
  EXPECT_EQ(square->elements, 1001u);
  EXPECT_EQ(square->elements_cached, 1000u);

  // The same input again: the whole map is one hit.
  const auto again = p.run(cached_in(dir.path(), {{"shards", "1001"}}));
  EXPECT_TRUE(again.report().find("square")->cache_hit);
  EXPECT_EQ(calls, 1001);
}

TEST(cache, an_unusable_cache_directory_runs_every_step_and_says_why) {
  scratch_directory dir;
  const fs::path file = dir.path() / "not-a-directory";
  std::ofstream(file) << "x";
  run_counts counts;
  const auto [p, out] = make_pipeline(counts);
  const auto result = p.run(cached_in(file));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.value(out), "value 11");
  EXPECT_NE(result.report().cache_note.find("every step runs"), std::string::npos) << result.report().cache_note;
}
