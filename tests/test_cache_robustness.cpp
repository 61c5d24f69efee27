// The step cache when things go wrong, in one process: a value the
// serializer rejects and a non-UTF-8 string parameter are warnings, never a
// failed run; damaged map elements are reported; a hit recomputed from an
// input other steps are releasing reads a live value; nested projections
// have keys of their own. (cache_robustness.sh covers leases across
// processes and a real full disk.)
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <sqlite3.h>

#include <penstock/penstock.hpp>

#include "rendezvous.hpp"
#include "scratch_directory.hpp"

namespace ps = penstock;
namespace fs = std::filesystem;

namespace {

using penstock_test::rendezvous;
using penstock_test::scratch_directory;

ps::run_options cached_in(const fs::path& dir, std::vector<std::pair<std::string, std::string>> params = {}) {
  ps::run_options options;
  options.threads = 2;
  options.params = std::move(params);
  options.cache.enabled = true;
  options.cache.directory = dir.string();
  return options;
}

void sql(const fs::path& dir, const char* statement) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "index.sqlite").c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, statement, nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << statement << ": " << (error != nullptr ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

// A value whose serialization throws (as cereal does for bytes it cannot
// write, or a user's save() for a state it refuses), when `refuse` is set.
struct refusing_value {
  inline static std::atomic<bool> refuse{false};
  long value = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    if constexpr (Archive::is_saving::value) {
      if (refuse) throw std::runtime_error("refusing_value will not be written");
    }
    archive(value);
  }
};

}  // namespace

TEST(cache_robustness, a_value_the_serializer_rejects_is_a_warning_and_the_run_goes_on) {
  scratch_directory dir;
  std::atomic<int> runs{0};
  auto n = ps::param<long>("n", 4);
  auto made = ps::step<"made">([&runs](long v) {
    ++runs;
    return refusing_value{v * 10};
  })(n);
  auto used = ps::step<"used">([](const refusing_value& v) { return v.value + 1; })(made);
  const auto p = ps::pipeline<"refuse">(used);

  refusing_value::refuse = true;
  const auto first = p.run(cached_in(dir.path()));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  EXPECT_EQ(first.value(used), 41);
  const auto* made_report = first.report().find("made");
  EXPECT_NE(made_report->cache_note.find("not stored in the cache"), std::string::npos) << made_report->cache_note;
  EXPECT_NE(made_report->cache_note.find("refusing_value will not be written"), std::string::npos);
  // Its dependents have no key (the value could not be hashed): they run, as without a cache.
  const auto second = p.run(cached_in(dir.path()));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(used), 41);
  EXPECT_EQ(runs, 2) << "nothing was stored, so it is computed again";
  refusing_value::refuse = false;
}

TEST(cache_robustness, a_string_parameter_that_is_not_utf8_is_cached_and_recorded) {
  scratch_directory dir;
  std::atomic<int> runs{0};
  auto label = ps::param<std::string>("label");
  auto shout = ps::step<"shout">([&runs](const std::string& s) {
    ++runs;
    return s + "!";
  })(label);
  const auto p = ps::pipeline<"utf8">(shout);
  const std::string latin1 = "caf\xe9";
  const auto first = p.run(cached_in(dir.path(), {{"label", latin1}}));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  EXPECT_EQ(first.value(shout), latin1 + "!");
  const auto second = p.run(cached_in(dir.path(), {{"label", latin1}}));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second.report().find("shout")->cache_hit);
  EXPECT_EQ(second.value(shout), latin1 + "!");
  // Another byte string is another key.
  const auto other = p.run(cached_in(dir.path(), {{"label", "caf\xe8"}}));
  EXPECT_FALSE(other.report().find("shout")->cache_hit);
  EXPECT_EQ(runs, 2);
}

TEST(cache_robustness, printable_escapes_exactly_the_bytes_that_are_not_utf8) {
  // Through explain's record of the parameter's value (key_parts JSON).
  scratch_directory dir;
  auto label = ps::param<std::string>("label");
  auto echo = ps::step<"echo">([](const std::string& s) { return s; })(label);
  const auto p = ps::pipeline<"printable">(echo);
  ASSERT_TRUE(p.run(cached_in(dir.path(), {{"label", "a\xff\xc3\xa9z"}})).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "index.sqlite").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT components FROM steps WHERE step = 'echo'", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  const std::string components = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
  sqlite3_close(db);
  // \xff is not UTF-8 and is escaped; "é" (c3 a9) is, and stays.
  EXPECT_NE(components.find(R"(a\\xff)"
                            "\xc3\xa9"
                            "z"),
            std::string::npos)
      << components;
}

TEST(cache_robustness, damaged_map_elements_are_reported_with_their_index) {
  scratch_directory dir;
  std::atomic<int> calls{0};
  auto count = ps::param<long>("count", 8);
  auto ids = ps::step<"ids">([](long n) {
    std::vector<long> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0L);
    return v;
  })(count);
  auto squares = ps::map<"square">([&calls](long x) {
    ++calls;
    return x * x;
  })(ids);
  const auto p = ps::pipeline<"elements">(squares);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  EXPECT_EQ(calls, 8);
  // Damage every stored value (they are small: inline in the index), then
  // add an element so that the map runs and reads its elements back.
  sql(dir.path(), "UPDATE entries SET inline_value = randomblob(length(inline_value)) WHERE length(inline_value) > 0");
  const auto again = p.run(cached_in(dir.path(), {{"count", "9"}}));
  ASSERT_TRUE(again.ok()) << again.report().summary();
  std::vector<long> expected(9);
  for (long i = 0; i < 9; ++i) expected[static_cast<std::size_t>(i)] = i * i;
  EXPECT_EQ(again.value(squares), expected);
  const std::string& note = again.report().find("square")->cache_note;
  // The first five notes are quoted in the order the elements (in parallel) found them.
  // (std::regex here trips g++ 12's -Wmaybe-uninitialized at -O2.)
  EXPECT_TRUE(note.rfind("element ", 0) == 0 && note.find(" of 9: cache entry") == std::string("element 0").size())
      << note;
  EXPECT_NE(note.find("recomputed"), std::string::npos) << note;
  EXPECT_NE(note.find("more element"), std::string::npos) << "8 damaged, 5 quoted: " << note;
  EXPECT_EQ(calls, 8 + 9);
}

// q (never cached) feeds p (cached, its entry damaged) and r; x needs p,
// so p is recomputed from q while r finishes and releases q. The
// recomputation must read a live q: before the fix, r's release freed it
// under p's feet (AddressSanitizer: heap-use-after-free).
TEST(cache_robustness, a_recomputed_hit_reads_an_input_that_other_steps_release) {
  scratch_directory dir;
  struct meeting {
    rendezvous p_recomputing{1};
    rendezvous s_started{1};
  };
  auto m = std::make_unique<meeting>();
  std::atomic<bool> damaged_run{false};
  std::atomic<int> p_runs{0};
  auto q = ps::step<"q">([] { return std::vector<long>(4096, 3); }).cache(ps::never)();
  auto p = ps::step<"p">([&](const std::vector<long>& v) {
    if (++p_runs == 2) {
      m->p_recomputing.arrive();
      EXPECT_TRUE(m->s_started.wait()) << "s never started";
    }
    return std::accumulate(v.begin(), v.end(), 0L);
  })(q);
  auto x = ps::step<"x">([](long v) { return v + 1; }).cache(ps::never)(p);
  auto r = ps::step<"r">([&](const std::vector<long>& v) {
             if (damaged_run) {
               EXPECT_TRUE(m->p_recomputing.wait()) << "p was not recomputed";
             }
             return static_cast<long>(v.size());
           }).cache(ps::never)(q);
  auto s = ps::step<"s">([&](long v) {
             if (damaged_run) m->s_started.arrive();
             return v * 2;
           }).cache(ps::never)(r);
  const auto pipeline = ps::pipeline<"release">(x, s);

  const auto first = pipeline.run(cached_in(dir.path()));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  EXPECT_EQ(first.value(x), 4096 * 3 + 1);
  sql(dir.path(), "UPDATE entries SET inline_value = randomblob(length(inline_value)) WHERE length(inline_value) > 0");
  damaged_run = true;
  const auto second = pipeline.run(cached_in(dir.path()));
  ASSERT_TRUE(second.ok()) << second.report().summary();
  EXPECT_EQ(second.value(x), 4096 * 3 + 1);
  EXPECT_EQ(second.value(s), 8192);
  EXPECT_EQ(p_runs, 2);
  EXPECT_NE(second.report().find("p")->cache_note.find("recomputed"), std::string::npos);
}

namespace {
struct halves {
  std::pair<long, long> a;
  std::pair<long, long> b;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(a, b);
  }
};

// One pipeline named "nested" whose step "pick" takes get<0> of member a or
// of member b: the same step name, producer and outer projection.
template <auto Member>
auto nested_pipeline(std::atomic<int>& picks) {
  auto whole = ps::step<"whole">([] { return halves{{1, 2}, {3, 4}}; })();
  auto part = ps::get<0>(ps::get<Member>(whole));
  auto pick = ps::step<"pick">([&picks](long v) {
    ++picks;
    return v * 100;
  })(part);
  return std::pair{ps::pipeline<"nested">(pick), pick};
}
}  // namespace

TEST(cache_robustness, nested_projections_are_keyed_apart) {
  scratch_directory dir;
  std::atomic<int> picks{0};
  const auto [from_a, pick_a] = nested_pipeline<&halves::a>(picks);
  const auto [from_b, pick_b] = nested_pipeline<&halves::b>(picks);
  const auto a = from_a.run(cached_in(dir.path()));
  ASSERT_TRUE(a.ok()) << a.report().summary();
  EXPECT_EQ(a.value(pick_a), 100);
  const auto b = from_b.run(cached_in(dir.path()));
  ASSERT_TRUE(b.ok()) << b.report().summary();
  EXPECT_EQ(b.value(pick_b), 300) << "get<0>(get<&halves::b>) is not get<0>(get<&halves::a>)";
  EXPECT_FALSE(b.report().find("pick")->cache_hit);
  EXPECT_EQ(picks, 2);
}

namespace {

long count_rows(const fs::path& dir, const char* table) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2((dir / "index.sqlite").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  const std::string query = std::string("SELECT count(*) FROM ") + table;
  EXPECT_EQ(sqlite3_prepare_v2(db, query.c_str(), -1, &statement, nullptr), SQLITE_OK);
  long rows = -1;
  if (sqlite3_step(statement) == SQLITE_ROW) rows = sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return rows;
}

}  // namespace

// A cache the run must not change (cache_options::read_only, as for a
// directory it cannot write): hits are served, steps and map elements that
// miss are computed and not stored, no lease or run record is written, and
// the run says so once instead of warning for every step.
TEST(cache_robustness, a_read_only_cache_serves_hits_and_stores_nothing) {
  scratch_directory dir;
  std::atomic<int> loads{0};
  std::atomic<int> squared{0};
  auto count = ps::param<long>("count", 4);
  auto ids = ps::step<"ids">([&loads](long n) {
    ++loads;
    std::vector<long> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0L);
    return v;
  })(count);
  auto squares = ps::map<"square">([&squared](long x) {
    ++squared;
    return x * x;
  })(ids);
  auto total =
      ps::step<"total">([](const std::vector<long>& v) { return std::accumulate(v.begin(), v.end(), 0L); })(squares);
  const auto p = ps::pipeline<"read_only">(total);
  ASSERT_TRUE(p.run(cached_in(dir.path())).ok());
  ASSERT_EQ(loads, 1);
  ASSERT_EQ(squared, 4);
  const long entries = count_rows(dir.path(), "entries");
  const long runs = count_rows(dir.path(), "runs");

  auto read_only = [&](std::vector<std::pair<std::string, std::string>> params) {
    ps::run_options options = cached_in(dir.path(), std::move(params));
    options.cache.read_only = true;
    return options;
  };
  const auto hit = p.run(read_only({}));
  ASSERT_TRUE(hit.ok()) << hit.report().summary();
  EXPECT_EQ(hit.value(total), 0 + 1 + 4 + 9);
  EXPECT_EQ(hit.report().cache_hits(), 3U);
  EXPECT_EQ(loads, 1);
  EXPECT_NE(hit.report().cache_note.find("read-only"), std::string::npos) << hit.report().cache_note;

  // Two new elements and new ids/total: computed, the four old elements read back.
  const auto miss = p.run(read_only({{"count", "6"}}));
  ASSERT_TRUE(miss.ok()) << miss.report().summary();
  EXPECT_EQ(miss.value(total), 0 + 1 + 4 + 9 + 16 + 25);
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(squared, 4 + 2);
  EXPECT_EQ(miss.report().find("square")->elements_cached, 4U);
  for (const auto& step : miss.report().steps) EXPECT_EQ(step.cache_note, "") << step.name;
  EXPECT_EQ(count_rows(dir.path(), "entries"), entries);
  EXPECT_EQ(count_rows(dir.path(), "runs"), runs);
  EXPECT_EQ(count_rows(dir.path(), "leases"), 0);

  // Nothing was stored: the same run, writable, computes the same again.
  const auto writable = p.run(cached_in(dir.path(), {{"count", "6"}}));
  ASSERT_TRUE(writable.ok());
  EXPECT_EQ(loads, 3);
  EXPECT_EQ(squared, 4 + 2 + 2);
}
