// The `cache stats` and `cache gc` commands (runtime/src/cache_commands.hpp):
// SIZE and DURATION parsing, what each command prints on a missing, empty and
// populated cache, gc removing least recently used entries, and exit codes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sqlite3.h>
#include <CLI/CLI.hpp>

#include <penstock/digest.hpp>

#include "cache_commands.hpp"
#include "cache_store.hpp"
#include "scratch_directory.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using penstock::digest;
using penstock::hasher;
using namespace penstock::detail::r1;

namespace {

using penstock_test::scratch_directory;

// Points PENSTOCK_HOME at a directory for the life of the object.
class penstock_home {
 public:
  explicit penstock_home(const fs::path& dir) {
    if (const char* old = std::getenv("PENSTOCK_HOME")) saved_ = old;
    ::setenv("PENSTOCK_HOME", dir.c_str(), 1);
  }
  penstock_home(const penstock_home&) = delete;
  penstock_home& operator=(const penstock_home&) = delete;
  ~penstock_home() {
    if (saved_) {
      ::setenv("PENSTOCK_HOME", saved_->c_str(), 1);
    } else {
      ::unsetenv("PENSTOCK_HOME");
    }
  }

 private:
  std::optional<std::string> saved_;
};

struct outcome {
  int code = -1;
  std::string out;
  std::string err;
};

// Parses `args` (after the program name) with the cache commands added to a
// fresh App, then runs the one parsed, as cli.cpp does.
outcome run_cli(const std::vector<std::string>& args, std::string_view pipeline = "quickstart") {
  CLI::App app("test pipeline");
  const cache_commands commands = add_cache_commands(app);
  std::vector<const char*> argv{"pipeline"};
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  std::ostringstream out;
  std::ostringstream err;
  outcome result;
  result.code = run_cache_command(commands, pipeline, out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

// The value printed on the line labelled `label` (labels are padded to 20
// columns), or nullopt when there is no such line.
std::optional<std::string> value_of(const std::string& output, std::string_view label) {
  std::istringstream lines(output);
  std::string text;
  while (std::getline(lines, text)) {
    if (text.size() <= 21) continue;
    std::string head = text.substr(0, 20);
    head.erase(head.find_last_not_of(' ') + 1);
    if (head == label) return text.substr(21);
  }
  return std::nullopt;
}

digest key_of(std::string_view name, std::uint64_t i = 0) { return hasher().update(name).update_value(i).finish(); }
const digest bytes_type = hasher().update("bytes").finish();

// 1000 bytes whose content depends on i.
std::vector<std::byte> thousand_bytes(int i) {
  std::vector<std::byte> bytes(1000);
  bytes[0] = static_cast<std::byte>(i);
  bytes[1] = static_cast<std::byte>(i >> 8);
  return bytes;
}

void exec_sql(const fs::path& index, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(index.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10'000);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

// ---- SIZE, DURATION, human sizes -----------------------------------------------

TEST(cache_commands_parse, sizes_with_binary_units_in_any_case) {
  constexpr std::uint64_t k = 1024;
  const std::pair<const char*, std::uint64_t> good[] = {
      {"0", 0},
      {"1", 1},
      {"500", 500},
      {"007", 7},
      {"1b", 1},
      {"12B", 12},
      {"1K", k},
      {"1k", k},
      {"3KB", 3 * k},
      {"3kb", 3 * k},
      {"3KiB", 3 * k},
      {"3kib", 3 * k},
      {"3KIB", 3 * k},
      {"500M", 500 * k * k},
      {"500MB", 500 * k * k},
      {"500mib", 500 * k * k},
      {"2GiB", 2 * k * k * k},
      {"2g", 2 * k * k * k},
      {"2Gb", 2 * k * k * k},
      {"1T", k * k * k * k},
      {"1tb", k * k * k * k},
      {"1TiB", k * k * k * k},
      {"0G", 0},
      {"16777215T", 16777215 * k * k * k * k},
      {"18446744073709551615", std::numeric_limits<std::uint64_t>::max()},
      {"18014398509481983K", 18014398509481983 * k},
  };
  for (const auto& [text, bytes] : good) {
    EXPECT_EQ(parse_size(text), bytes) << text;
  }
}

TEST(cache_commands_parse, bad_sizes_say_what_is_wrong) {
  const std::pair<const char*, const char*> bad[] = {
      {"", "empty"},
      {"-1", "negative"},
      {"-5M", "negative"},
      {"abc", "not a size"},
      {"M", "not a size"},
      {"+5", "not a size"},
      {" 5", "not a size"},
      {"1.5G", "whole numbers"},
      {"1,5G", "whole numbers"},
      {"10X", "unknown unit 'X'"},
      {"10 M", "unknown unit ' M'"},
      {"5Mi", "unknown unit 'Mi'"},
      {"5MBs", "unknown unit 'MBs'"},
      {"1P", "unknown unit 'P'"},
      {"5M ", "unknown unit 'M '"},
      {"18446744073709551616", "too large"},
      {"99999999999999999999999", "too large"},
      {"16777216T", "too large"},
      {"18014398509481984K", "too large"},
  };
  for (const auto& [text, expected] : bad) {
    const std::string message = message_of([&] { (void)parse_size(text); });
    EXPECT_NE(message.find(expected), std::string::npos) << "'" << text << "': " << message;
  }
  EXPECT_NE(message_of([] { (void)parse_size("9Q"); }).find("1024"), std::string::npos) << "lists the units";
}

TEST(cache_commands_parse, durations_in_seconds_minutes_hours_days_weeks) {
  const std::pair<const char*, std::chrono::seconds> good[] = {
      {"0", 0s},
      {"45", 45s},
      {"45s", 45s},
      {"30m", 30min},
      {"2h", 2h},
      {"7d", 7 * 24h},
      {"1w", 7 * 24h},
      {"7D", 7 * 24h},
      {"90S", 90s},
      {"0w", 0s},
      {"9223372036", max_duration},
      {"15250w", std::chrono::seconds(15250LL * 604800)},
  };
  for (const auto& [text, expected] : good) {
    EXPECT_EQ(parse_duration(text), expected) << text;
  }
  // The largest duration still fits the nanoseconds gc_limits takes.
  EXPECT_LE(max_duration, std::chrono::duration_cast<std::chrono::seconds>(std::chrono::nanoseconds::max()));
}

TEST(cache_commands_parse, bad_durations_say_what_is_wrong) {
  const std::pair<const char*, const char*> bad[] = {
      {"", "empty"},
      {"-1", "negative"},
      {"-30m", "negative"},
      {"d", "not a duration"},
      {"soon", "not a duration"},
      {"1.5h", "whole numbers"},
      {"5x", "unknown unit 'x'"},
      {"1ms", "unknown unit 'ms'"},
      {"1 h", "unknown unit ' h'"},
      {"1h30m", "unknown unit 'h30m'"},
      {"9223372037", "too long"},
      {"15251w", "too long"},
      {"99999999999999999999999", "too large"},
  };
  for (const auto& [text, expected] : bad) {
    const std::string message = message_of([&] { (void)parse_duration(text); });
    EXPECT_NE(message.find(expected), std::string::npos) << "'" << text << "': " << message;
  }
}

TEST(cache_commands_parse, byte_counts_for_people) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.0 KiB");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(1048575), "1.0 MiB") << "never 1024.0 KiB";
  EXPECT_EQ(format_bytes(1048576), "1.0 MiB");
  EXPECT_EQ(format_bytes(std::uint64_t{5} << 30), "5.0 GiB");
  EXPECT_EQ(format_bytes(std::uint64_t{3} << 40), "3.0 TiB");
  EXPECT_EQ(format_bytes(std::numeric_limits<std::uint64_t>::max()), "16.0 EiB");
}

// ---- the command line -----------------------------------------------------------

TEST(cache_commands_cli, cache_needs_a_subcommand_and_help_explains_the_units) {
  CLI::App app("test pipeline");
  const cache_commands commands = add_cache_commands(app);
  ASSERT_NE(commands.cache, nullptr);
  ASSERT_NE(commands.stats, nullptr);
  ASSERT_NE(commands.gc, nullptr);
  const char* only_cache[] = {"pipeline", "cache"};
  EXPECT_THROW(app.parse(2, only_cache), CLI::ParseError);

  const std::string help = commands.gc->help();
  EXPECT_NE(help.find("--max-size SIZE"), std::string::npos) << help;
  EXPECT_NE(help.find("--max-age DURATION"), std::string::npos) << help;
  EXPECT_NE(help.find("1K = 1024"), std::string::npos) << help;
  EXPECT_NE(help.find("7d"), std::string::npos) << help;

  CLI::App again("test pipeline");
  (void)add_cache_commands(again);
  const char* extra[] = {"pipeline", "cache", "stats", "--max-size", "1"};
  EXPECT_THROW(again.parse(5, extra), CLI::ParseError) << "stats takes no limits";
}

TEST(cache_commands_stats, a_missing_cache_directory_is_reported_and_not_created) {
  scratch_directory dir;
  const fs::path cache = dir.path() / "not-here";
  penstock_home home(cache);
  const outcome r = run_cli({"cache", "stats"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(cache.string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_FALSE(fs::exists(cache));

  const outcome gc = run_cli({"cache", "gc", "--max-size", "0"});
  EXPECT_EQ(gc.code, 0) << gc.err;
  EXPECT_NE(gc.out.find("does not exist"), std::string::npos) << gc.out;
  EXPECT_FALSE(fs::exists(cache));
}

TEST(cache_commands_stats, a_directory_without_an_index_is_left_alone) {
  scratch_directory dir;
  penstock_home home(dir.path());
  const outcome r = run_cli({"cache", "stats"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("holds no cache index"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::is_empty(dir.path())) << "nothing created";
}

TEST(cache_commands_stats, an_empty_cache) {
  scratch_directory dir;
  penstock_home home(dir.path());
  { cache_store create(dir.path()); }
  const outcome r = run_cli({"cache", "stats"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(value_of(r.out, "cache directory"), dir.path().string()) << r.out;
  EXPECT_EQ(value_of(r.out, "entries"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "distinct blobs"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "total size"), "0 B (0 bytes)") << r.out;
  EXPECT_EQ(value_of(r.out, "leases"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "pipeline"), "quickstart") << r.out;
  EXPECT_EQ(value_of(r.out, "last run"), "no recorded run") << r.out;
}

TEST(cache_commands_stats, a_populated_cache_and_this_pipelines_last_run) {
  scratch_directory dir;
  penstock_home home(dir.path());
  cache_store store(dir.path());
  for (int i = 0; i < 3; ++i) store.put(key_of("stats", i), thousand_bytes(i), {bytes_type, "r"});
  store.put(key_of("stats", 3), thousand_bytes(0), {bytes_type, "r"});  // same bytes as 0: one blob
  store.put(key_of("big"), std::vector<std::byte>(3 << 20), {bytes_type, "r"});
  auto lease = store.try_acquire(key_of("being computed"), 1h);
  ASSERT_EQ(lease.status, lease_status::acquired);
  const auto now = std::chrono::system_clock::now();
  run_record mine{"run-mine", "quickstart", now - 1h, 2'500'000'000ns, 5, 3, 1, 1, 0};
  store.record_run(mine);
  store.record_run({"run-older", "quickstart", now - 2h, 1s, 9, 9, 9, 9, 9});
  store.record_run({"run-other", "churn", now, 1s, 7, 7, 7, 7, 7});

  const outcome r = run_cli({"cache", "stats"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(value_of(r.out, "entries"), "5") << r.out;
  // Values up to 64 KiB live in their index rows (each row its own copy);
  // only the 3 MiB one is a blob file.
  EXPECT_EQ(value_of(r.out, "distinct blobs"), "1") << r.out;
  EXPECT_EQ(value_of(r.out, "inline values"), "4") << r.out;
  EXPECT_EQ(value_of(r.out, "total size"), "3.0 MiB (3149728 bytes)") << r.out;
  EXPECT_EQ(value_of(r.out, "leases"), "1") << r.out;
  EXPECT_EQ(value_of(r.out, "last run"), "run-mine") << r.out;
  const auto started = value_of(r.out, "  started");
  ASSERT_TRUE(started.has_value()) << r.out;
  EXPECT_EQ(started->size(), std::string_view("2026-01-01 12:00:00 +0000").size()) << *started;
  EXPECT_EQ(value_of(r.out, "  wall time"), "2.500 s") << r.out;
  EXPECT_EQ(value_of(r.out, "  steps"), "5") << r.out;
  EXPECT_EQ(value_of(r.out, "  hits"), "3") << r.out;
  EXPECT_EQ(value_of(r.out, "  computed"), "1") << r.out;
  EXPECT_EQ(value_of(r.out, "  reported misses"), "1") << r.out;
  EXPECT_EQ(value_of(r.out, "  failed"), "0") << r.out;

  const outcome other = run_cli({"cache", "stats"}, "churn");
  EXPECT_EQ(value_of(other.out, "last run"), "run-other") << other.out;
  const outcome none = run_cli({"cache", "stats"}, "never-run");
  EXPECT_EQ(value_of(none.out, "last run"), "no recorded run") << none.out;
}

TEST(cache_commands_stats, prints_to_stdout) {
  scratch_directory dir;
  penstock_home home(dir.path() / "missing");
  CLI::App app("test pipeline");
  const cache_commands commands = add_cache_commands(app);
  const char* argv[] = {"pipeline", "cache", "stats"};
  app.parse(3, argv);
  testing::internal::CaptureStdout();
  const int code = run_cache_command(commands, "quickstart");
  const std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0);
  EXPECT_NE(printed.find("does not exist"), std::string::npos) << printed;
}

TEST(cache_commands_stats, a_damaged_index_is_exit_code_1_with_the_message) {
  scratch_directory dir;
  penstock_home home(dir.path());
  std::ofstream(dir.path() / "index.sqlite") << std::string(4096, 'x');
  const outcome r = run_cli({"cache", "stats"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find((dir.path() / "index.sqlite").string()), std::string::npos) << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(run_cli({"cache", "gc", "--max-age", "1d"}).code, 1);
}

TEST(cache_commands_gc, a_limit_is_required_and_bad_ones_are_exit_code_2) {
  scratch_directory dir;
  penstock_home home(dir.path());
  { cache_store create(dir.path()); }
  const outcome none = run_cli({"cache", "gc"});
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("--max-size"), std::string::npos) << none.err;
  EXPECT_NE(none.err.find("--max-age"), std::string::npos) << none.err;
  EXPECT_TRUE(none.out.empty()) << none.out;

  const std::pair<std::vector<std::string>, std::string> bad[] = {
      {{"--max-size", "12X"}, "--max-size '12X': unknown unit 'X'"},
      {{"--max-size=-1"}, "--max-size '-1': a size cannot be negative"},
      {{"--max-size", ""}, "--max-size '': empty"},
      {{"--max-age", "7y"}, "--max-age '7y': unknown unit 'y'"},
      {{"--max-age", "-7d"}, "--max-age '-7d': a duration cannot be negative"},
      {{"--max-size", "1G", "--max-age", "forever"}, "--max-age 'forever': not a duration"},
      {{"--max-size", "99999999999999999999"}, "--max-size '99999999999999999999': too large"},
  };
  for (const auto& [options, expected] : bad) {
    std::vector<std::string> args{"cache", "gc"};
    args.insert(args.end(), options.begin(), options.end());
    const outcome r = run_cli(args);
    EXPECT_EQ(r.code, 2) << expected;
    EXPECT_NE(r.err.find("error: " + expected), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }

  // Checked before the directory is looked at.
  penstock_home missing(dir.path() / "missing");
  EXPECT_EQ(run_cli({"cache", "gc", "--max-age", "soon"}).code, 2);
}

TEST(cache_commands_gc, max_size_removes_the_least_recently_used_and_prints_the_counts) {
  scratch_directory dir;
  penstock_home home(dir.path());
  {
    cache_store store(dir.path(), {.touch_interval = 0s, .clock = {}});  // every use is recorded
    for (int i = 0; i < 4; ++i) store.put(key_of("lru", i), thousand_bytes(i), {bytes_type, "r"});
    std::vector<std::byte> out;
    ASSERT_TRUE(store.get(key_of("lru", 0), out).hit());  // 0 is now the most recent
    const digest planned = key_of("lru", 1);
    store.touch(std::span(&planned, 1));  // and 1 after it
    store.record_run({"run-1", "quickstart", std::chrono::system_clock::now(), 1s, 4, 0, 4, 0, 0});
  }

  const outcome r = run_cli({"cache", "gc", "--max-size", "2500B"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(value_of(r.out, "cache directory"), dir.path().string()) << r.out;
  EXPECT_EQ(value_of(r.out, "limits"), "at most 2.4 KiB (2500 bytes)") << r.out;
  EXPECT_EQ(value_of(r.out, "entries removed"), "2") << r.out;
  EXPECT_EQ(value_of(r.out, "blobs removed"), "0") << r.out;  // small values: inline rows, no blob files
  EXPECT_EQ(value_of(r.out, "bytes freed"), "2.0 KiB (2000 bytes)") << r.out;
  EXPECT_EQ(value_of(r.out, "skipped in use"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "bad rows removed"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "orphans removed"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "temporaries removed"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "stale marks removed"), "0") << r.out;
  EXPECT_EQ(value_of(r.out, "entries left"), "2") << r.out;
  EXPECT_EQ(value_of(r.out, "size left"), "2.0 KiB (2000 bytes)") << r.out;

  cache_store store(dir.path());
  EXPECT_TRUE(store.lookup(key_of("lru", 0)).hit());
  EXPECT_TRUE(store.lookup(key_of("lru", 1)).hit());
  EXPECT_EQ(store.lookup(key_of("lru", 2)).status, cache_status::absent);
  EXPECT_EQ(store.lookup(key_of("lru", 3)).status, cache_status::absent);
  EXPECT_EQ(store.last_run("quickstart")->run_id, "run-1") << "gc keeps the run records";

  const outcome again = run_cli({"cache", "gc", "--max-size", "2K"});
  EXPECT_EQ(value_of(again.out, "entries removed"), "0") << "within budget\n" << again.out;
}

TEST(cache_commands_gc, max_age_removes_entries_unused_for_longer) {
  scratch_directory dir;
  penstock_home home(dir.path());
  {
    cache_store store(dir.path());
    for (int i = 0; i < 3; ++i) store.put(key_of("age", i), thousand_bytes(i), {bytes_type, "r"});
  }
  // Entry 0 was last used two hours ago, entry 1 two days ago.
  const auto ns_ago = [](std::chrono::nanoseconds d) {
    return std::to_string((std::chrono::system_clock::now().time_since_epoch() - d) / 1ns);
  };
  const auto last_used = [&](int i, std::chrono::nanoseconds ago) {
    exec_sql(dir.path() / "index.sqlite",
             "UPDATE entries SET last_used = " + ns_ago(ago) + " WHERE key = X'" + key_of("age", i).hex() + "'");
  };
  last_used(0, 2h);
  last_used(1, 48h);

  const outcome week = run_cli({"cache", "gc", "--max-age", "1w"});
  EXPECT_EQ(value_of(week.out, "entries removed"), "0") << week.out;
  const outcome day = run_cli({"cache", "gc", "--max-age", "1d"});
  EXPECT_EQ(value_of(day.out, "limits"), "entries used within 1d (86400 s)") << day.out;
  EXPECT_EQ(value_of(day.out, "entries removed"), "1") << day.out;
  const outcome hour = run_cli({"cache", "gc", "--max-age", "60m", "--max-size", "1G"});
  EXPECT_EQ(value_of(hour.out, "limits"), "at most 1.0 GiB (1073741824 bytes), entries used within 60m (3600 s)")
      << hour.out;
  EXPECT_EQ(value_of(hour.out, "entries removed"), "1") << hour.out;
  EXPECT_EQ(value_of(hour.out, "entries left"), "1") << hour.out;

  cache_store store(dir.path());
  EXPECT_TRUE(store.lookup(key_of("age", 2)).hit());
}

TEST(cache_commands_gc, never_removes_what_a_running_process_computes) {
  scratch_directory dir;
  penstock_home home(dir.path());
  cache_store store(dir.path());
  store.put(key_of("done"), thousand_bytes(1), {bytes_type, "r"});
  auto lease = store.try_acquire(key_of("computing"), 1h);
  ASSERT_EQ(lease.status, lease_status::acquired);
  store.put(key_of("computing"), thousand_bytes(2), {bytes_type, "r"});  // stored, lease not yet released

  const outcome r = run_cli({"cache", "gc", "--max-size", "0"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(value_of(r.out, "entries removed"), "1") << r.out;
  EXPECT_EQ(value_of(r.out, "skipped in use"), "1") << r.out;
  EXPECT_TRUE(store.lookup(key_of("computing")).hit());
  EXPECT_EQ(store.lookup(key_of("done")).status, cache_status::absent);
}
