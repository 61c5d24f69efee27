// ps::file and ps::directory: keyed by content (not path), checked before
// any step runs, produced by steps into their output directory, stored in
// the cache and restored read-only at a real path on a hit.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <penstock/penstock.hpp>

#include "scratch_directory.hpp"
#include "text_files.hpp"

namespace ps = penstock;
namespace fs = std::filesystem;

namespace {

using penstock_test::read_text;
using penstock_test::scratch_directory;
using penstock_test::write_text;

ps::run_options cached_in(const fs::path& dir, std::vector<std::pair<std::string, std::string>> params = {}) {
  ps::run_options options;
  options.threads = 2;
  options.params = std::move(params);
  options.cache.enabled = true;
  options.cache.directory = dir.string();
  return options;
}

// data (a file) ── count (its bytes) ── twice
struct counting {
  std::atomic<int> counts{0};
};
auto file_pipeline(counting& c) {
  auto data = ps::param<ps::file>("data");
  auto count = ps::step<"count">([&c](const ps::file& f) {
    ++c.counts;
    return static_cast<long>(read_text(f.path()).size());
  })(data);
  auto twice = ps::step<"twice">([](long n) { return 2 * n; })(count);
  return std::pair{ps::pipeline<"files">(twice), twice};
}

}  // namespace

TEST(file_values, a_file_parameter_is_keyed_by_its_content) {
  scratch_directory dir;
  const fs::path cache = dir.path() / "cache";
  const fs::path data = dir.path() / "data.txt";
  write_text(data, "12345");
  counting c;
  const auto [p, twice] = file_pipeline(c);
  const auto params = std::vector<std::pair<std::string, std::string>>{{"data", data.string()}};

  ASSERT_EQ(p.run(cached_in(cache, params)).value(twice), 10);
  const auto same = p.run(cached_in(cache, params));
  EXPECT_TRUE(same.report().find("count")->cache_hit);

  write_text(data, "1234567");  // edited: the step reruns
  const auto edited = p.run(cached_in(cache, params));
  EXPECT_FALSE(edited.report().find("count")->cache_hit);
  EXPECT_EQ(edited.value(twice), 14);

  write_text(data, "12345");  // back: a hit again
  const auto back = p.run(cached_in(cache, params));
  EXPECT_TRUE(back.report().find("count")->cache_hit);
  EXPECT_EQ(back.value(twice), 10);

  // Touched, same bytes: nothing reruns.
  const auto later = fs::last_write_time(data) + std::chrono::minutes(1);
  fs::last_write_time(data, later);
  const auto touched = p.run(cached_in(cache, params));
  EXPECT_TRUE(touched.report().find("count")->cache_hit);

  // The same bytes under the same name in another folder: the same key.
  fs::create_directories(dir.path() / "elsewhere");
  write_text(dir.path() / "elsewhere" / "data.txt", "12345");
  const auto moved = p.run(cached_in(cache, {{"data", (dir.path() / "elsewhere" / "data.txt").string()}}));
  EXPECT_TRUE(moved.report().find("count")->cache_hit);
  EXPECT_EQ(c.counts, 2);
}

TEST(file_values, a_missing_input_file_stops_the_run_before_any_step_naming_the_parameter_and_path) {
  scratch_directory dir;
  counting c;
  const auto [p, twice] = file_pipeline(c);
  const fs::path missing = dir.path() / "nowhere.csv";
  for (bool cached : {true, false}) {
    auto options = cached_in(dir.path() / "cache", {{"data", missing.string()}});
    options.cache.enabled = cached;
    try {
      (void)p.run(options);
      ADD_FAILURE() << "no error";
    } catch (const ps::param_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("parameter 'data'"), std::string::npos) << what;
      EXPECT_NE(what.find(missing.string()), std::string::npos) << what;
    }
  }
  // A directory where a file is expected.
  try {
    (void)p.run(cached_in(dir.path() / "cache", {{"data", dir.path().string()}}));
    ADD_FAILURE() << "no error";
  } catch (const ps::param_error& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c.counts, 0);
}

TEST(file_values, a_produced_file_is_stored_and_restored_read_only_on_a_hit) {
  scratch_directory dir;
  const fs::path cache = dir.path() / "cache";
  std::atomic<int> makes{0};
  auto n = ps::param<int>("n", 3);
  auto made = ps::step<"make">([&makes](ps::context& ctx, int count) {
    ++makes;
    const fs::path out = ctx.output_path("lines.txt");
    std::ofstream f(out);
    for (int i = 0; i < count; ++i) f << "line " << i << "\n";
    return ps::file(out);
  })(n);
  auto lines = ps::step<"lines">([](const ps::file& f) {
                 std::istringstream in(read_text(f.path()));
                 int k = 0;
                 for (std::string line; std::getline(in, line);) ++k;
                 return k;
               }).cache(ps::never)(made);
  const auto p = ps::pipeline<"produce">(lines, made);

  const auto first = p.run(cached_in(cache));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  EXPECT_EQ(first.value(lines), 3);
  const fs::path stored = first.value(made).path();
  EXPECT_EQ(stored.filename(), "lines.txt");
  EXPECT_EQ(read_text(stored), "line 0\nline 1\nline 2\n");
  EXPECT_EQ(stored.string().rfind((cache / "files").string(), 0), 0u)
      << "handed on as its copy in the cache: " << stored;
  EXPECT_FALSE(fs::exists(cache / "work")) << "the run's output directory is removed";

  // A hit: the consumer gets a real, read-only file with the same bytes.
  fs::remove_all(cache / "files");  // restored again from the stored bytes
  const auto second = p.run(cached_in(cache));
  ASSERT_TRUE(second.ok()) << second.report().summary();
  EXPECT_TRUE(second.report().find("make")->cache_hit);
  EXPECT_EQ(second.value(lines), 3);
  EXPECT_EQ(read_text(second.value(made).path()), "line 0\nline 1\nline 2\n");
  struct stat st {};
  ASSERT_EQ(::stat(second.value(made).path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u) << "restored read-only";
  EXPECT_EQ(makes, 1);
}

TEST(file_values, a_step_returning_a_file_that_does_not_exist_fails_naming_it) {
  scratch_directory dir;
  auto made = ps::step<"make">([](ps::context& ctx) { return ps::file(ctx.output_path("never-written.bin")); })();
  const auto p = ps::pipeline<"absent">(made);
  for (bool cached : {true, false}) {
    auto options = cached_in(dir.path() / "cache");
    options.cache.enabled = cached;
    const auto result = p.run(options);
    ASSERT_FALSE(result.ok());
    const std::string error = result.report().find("make")->error;
    EXPECT_NE(error.find("never-written.bin"), std::string::npos) << error;
  }
}

TEST(file_values, a_directory_is_keyed_by_its_files_names_modes_and_contents) {
  scratch_directory dir;
  const fs::path cache = dir.path() / "cache";
  const fs::path tree = dir.path() / "tree";
  fs::create_directories(tree / "sub");
  write_text(tree / "a.txt", "alpha");
  write_text(tree / "sub" / "b.txt", "beta");
  std::atomic<int> runs{0};
  auto input = ps::param<ps::directory>("tree");
  auto listing = ps::step<"listing">([&runs](const ps::directory& d) {
    ++runs;
    std::vector<std::string> names;
    for (const auto& e : fs::recursive_directory_iterator(d.path()))
      if (e.is_regular_file()) names.push_back(e.path().lexically_relative(d.path()).generic_string());
    std::sort(names.begin(), names.end());
    std::string out;
    for (const auto& n : names) out += n + ";";
    return out;
  })(input);
  const auto p = ps::pipeline<"tree">(listing);
  const auto params = std::vector<std::pair<std::string, std::string>>{{"tree", tree.string()}};
  EXPECT_EQ(p.run(cached_in(cache, params)).value(listing), "a.txt;sub/b.txt;");
  EXPECT_TRUE(p.run(cached_in(cache, params)).report().find("listing")->cache_hit);
  write_text(tree / "sub" / "b.txt", "BETA");  // content
  EXPECT_FALSE(p.run(cached_in(cache, params)).report().find("listing")->cache_hit);
  fs::permissions(tree / "a.txt", fs::perms::owner_exec, fs::perm_options::add);  // mode
  EXPECT_FALSE(p.run(cached_in(cache, params)).report().find("listing")->cache_hit);
  write_text(tree / "c.txt", "");  // a new file
  EXPECT_EQ(p.run(cached_in(cache, params)).value(listing), "a.txt;c.txt;sub/b.txt;");
  EXPECT_EQ(runs, 4);
}

TEST(file_values, a_produced_directory_is_restored_whole) {
  scratch_directory dir;
  const fs::path cache = dir.path() / "cache";
  std::atomic<int> makes{0};
  auto made = ps::step<"plots">([&makes](ps::context& ctx) {
    ++makes;
    const fs::path out = ctx.output_path("plots");
    fs::create_directories(out / "deep");
    write_text(out / "one.svg", "<svg/>");
    write_text(out / "deep" / "two.svg", std::string(100'000, 'x'));  // a blob file, not inline
    return ps::directory(out);
  })();
  const auto p = ps::pipeline<"plots">(made);
  ASSERT_TRUE(p.run(cached_in(cache)).ok());
  fs::remove_all(cache / "files");
  const auto again = p.run(cached_in(cache));
  ASSERT_TRUE(again.ok()) << again.report().summary();
  EXPECT_TRUE(again.report().find("plots")->cache_hit);
  const fs::path restored = again.value(made).path();
  EXPECT_EQ(restored.filename(), "plots");
  EXPECT_EQ(read_text(restored / "one.svg"), "<svg/>");
  EXPECT_EQ(read_text(restored / "deep" / "two.svg").size(), 100'000u);
  EXPECT_EQ(makes, 1);
}

TEST(file_values, a_file_whose_stored_bytes_are_gone_is_a_reported_miss_and_recomputed) {
  scratch_directory dir;
  const fs::path cache = dir.path() / "cache";
  std::atomic<int> makes{0};
  auto made = ps::step<"make">([&makes](ps::context& ctx) {
    ++makes;
    const fs::path out = ctx.output_path("big.bin");
    write_text(out, std::string(200'000, 'z'));
    return ps::file(out);
  })();
  const auto p = ps::pipeline<"gone">(made);
  ASSERT_TRUE(p.run(cached_in(cache)).ok());
  fs::remove_all(cache / "files");
  for (const auto& e : fs::recursive_directory_iterator(cache / "blobs"))
    if (e.is_regular_file()) fs::remove(e.path());
  const auto again = p.run(cached_in(cache));
  ASSERT_TRUE(again.ok()) << again.report().summary();
  EXPECT_EQ(read_text(again.value(made).path()), std::string(200'000, 'z'));
  EXPECT_NE(again.report().find("make")->cache_note, "") << "reported";
  EXPECT_EQ(makes, 2);
}
