// Run tracking: every run recorded in its workspace (runtime/src/
// workspace_store.hpp), cache on or off: the run, its parameters, each step
// run, logs, metrics and lineage; the observer seam's events in order; a
// workspace that cannot be written is a warning; schemas older and newer;
// when a run's record is complete (as run() returns, or, written behind,
// after ps::wait_for_records(), the workspace's opening or the process's exit).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sqlite3.h>

#include <penstock/penstock.hpp>
#include <penstock/version.hpp>

#include "cache_store.hpp"
#include "run_recorder.hpp"
#include "scratch_directory.hpp"
#include "workspace_store.hpp"

namespace fs = std::filesystem;
namespace ps = penstock;
using namespace penstock::detail::r1;
using penstock_test::scratch_directory;

namespace {

ps::run_options recorded_in(const fs::path& dir, bool cache = false) {
  ps::run_options options;
  options.threads = 2;
  options.cache.enabled = cache;
  options.cache.directory = dir.string();
  return options;
}

// A small pipeline: a parameter, a step that logs and reports a metric per
// epoch, one that may fail, one after it.
auto make_training() {
  auto epochs = ps::param<int>("epochs", 3);
  auto data = ps::step<"data">([] { return 10; })();
  auto train = ps::step<"train">([](ps::context& ctx, int d, int n) {
    for (int e = 1; e <= n; ++e) {
      ctx.log("epoch " + std::to_string(e));
      ctx.log_metric("loss", 1.0 / (e * d), e);
    }
    ctx.log_metric("accuracy", 0.5 + 0.1 * n);
    return 1.0 / n;
  })(data, epochs);
  auto report = ps::step<"report">([](double loss) { return std::to_string(loss); })(train);
  return std::pair{ps::pipeline<"training">(report), report};
}

std::unique_ptr<workspace_store> open(const fs::path& dir) {
  return workspace_store::open_for_reading(dir / "runs.db");
}

const step_run_row* step_named(const std::vector<step_run_row>& rows, std::string_view name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}

void exec_sql(const fs::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

// One text column of the first row `sql` returns, read straight from the
// file (not through workspace_store, whose opening waits for this process's
// records): "" when no row.
std::string sql_text(const fs::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string value;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW &&
        sqlite3_column_text(q, 0) != nullptr)
      value = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
  }
  sqlite3_close(db);
  return value;
}

std::string status_in_file(const fs::path& dir, const std::string& run) {
  return sql_text(dir / "runs.db", "SELECT status FROM runs WHERE id = '" + run + "'");
}

}  // namespace

TEST(tracking, a_run_without_the_cache_is_recorded_with_its_parameters_steps_logs_and_metrics) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  auto options = recorded_in(dir.path());
  options.params = {{"epochs", "4"}};
  options.tracking.experiment = "baseline";
  const auto result = p.run(options);
  ASSERT_TRUE(result.ok()) << result.report().summary();
  const auto& report = result.report();
  ASSERT_FALSE(report.run_id.empty());
  EXPECT_TRUE(report.warnings.empty()) << report.warnings.front();

  const auto store = open(dir.path());
  const auto run = store->find_run(report.run_id);
  ASSERT_TRUE(run);
  EXPECT_EQ(run->experiment, "baseline");
  EXPECT_EQ(run->pipeline, "training");
  EXPECT_EQ(run->status, "succeeded");
  EXPECT_EQ(run->structure, structure_digest(p.description()).hex());
  EXPECT_EQ(run->pid, ::getpid());
  EXPECT_FALSE(run->host.empty());
  EXPECT_FALSE(run->user.empty());
  EXPECT_EQ(run->version, PENSTOCK_VERSION_STRING);
  EXPECT_EQ(run->directory, fs::current_path().string());
  ASSERT_TRUE(run->ended);
  EXPECT_GE(*run->ended, run->started);
  EXPECT_EQ(run->steps, 3u);
  EXPECT_EQ(run->computed, 3u);
  EXPECT_EQ(run->cached, 0u);
  EXPECT_EQ(store->params(report.run_id), (std::vector<std::pair<std::string, std::string>>{{"epochs", "4"}}));

  const auto steps = store->step_runs(report.run_id);
  ASSERT_EQ(steps.size(), 3u);
  for (const auto& s : steps) {
    EXPECT_EQ(s.status, "ran") << s.name;
    EXPECT_EQ(s.attempts, 1u) << s.name;
    EXPECT_GE(s.worker, 0) << s.name;
    EXPECT_FALSE(s.output) << s.name << ": no digest without the cache";
  }
  // The steps of a chain start one after the other.
  EXPECT_LE(step_named(steps, "data")->started, step_named(steps, "train")->started);
  EXPECT_LE(step_named(steps, "train")->started, step_named(steps, "report")->started);

  const auto logs = store->logs(report.run_id, "train");
  ASSERT_EQ(logs.size(), 4u);
  EXPECT_EQ(logs[0].line, "epoch 1");
  EXPECT_EQ(logs[3].line, "epoch 4");
  EXPECT_EQ(logs[0].step, "train");
  const auto metrics = store->metrics(report.run_id);
  std::vector<std::int64_t> loss_steps;
  for (const auto& m : metrics)
    if (m.name == "loss") loss_steps.push_back(m.step_number);
  EXPECT_EQ(loss_steps, (std::vector<std::int64_t>{1, 2, 3, 4}));
  const auto accuracy =
      std::find_if(metrics.begin(), metrics.end(), [](const auto& m) { return m.name == "accuracy"; });
  ASSERT_NE(accuracy, metrics.end());
  EXPECT_DOUBLE_EQ(accuracy->value, 0.9);
  EXPECT_EQ(accuracy->step, "train");

  // Within the run, lineage follows the graph: train read data's output.
  const auto inputs = store->step_inputs(report.run_id);
  ASSERT_EQ(inputs.size(), 2u);  // train <- data, report <- train
  EXPECT_EQ(inputs[0].producer, 0u);
  EXPECT_EQ(inputs[0].node, 1u);
}

TEST(tracking, cached_runs_record_hits_and_the_digests_that_link_runs) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  const auto first = p.run(recorded_in(dir.path(), true));
  ASSERT_TRUE(first.ok()) << first.report().summary();
  const auto second = p.run(recorded_in(dir.path(), true));
  ASSERT_TRUE(second.ok()) << second.report().summary();
  const auto store = open(dir.path());
  const auto again = store->find_run(second.report().run_id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->cached, 3u);
  EXPECT_EQ(again->computed, 0u);
  const auto steps = store->step_runs(second.report().run_id);
  for (const auto& s : steps) {
    EXPECT_EQ(s.status, "cached") << s.name;
    EXPECT_EQ(s.attempts, 0u) << s.name;
    EXPECT_TRUE(s.key) << s.name;
    EXPECT_TRUE(s.output) << s.name;
  }
  // train's output: produced by the first run's train (ran) and served to
  // the second (cached); read by both runs' report.
  const penstock::digest trained = *step_named(steps, "train")->output;
  const auto producers = store->producers(trained);
  ASSERT_EQ(producers.size(), 2u);
  EXPECT_EQ(producers[0].run, first.report().run_id);
  EXPECT_EQ(producers[0].status, "ran");
  EXPECT_EQ(producers[1].status, "cached");
  const auto consumers = store->consumers(trained);
  std::set<std::string> runs;
  for (const auto& c : consumers) {
    EXPECT_EQ(c.step, "report");
    runs.insert(c.run);
  }
  EXPECT_EQ(runs, (std::set<std::string>{first.report().run_id, second.report().run_id}));
  // The run id is the cache's too.
  EXPECT_EQ(store->runs({}).size(), 2u);
}

TEST(tracking, a_failed_step_is_recorded_with_its_error_and_what_it_skipped) {
  scratch_directory dir;
  auto a = ps::step<"a">([] { return 1; })();
  auto b = ps::step<"b">([](int) -> int { throw std::runtime_error("no data for b"); }).retries(1)(a);
  auto c = ps::step<"c">([](int x) { return x; })(b);
  const auto result = ps::pipeline<"fails">(c).run(recorded_in(dir.path()));
  ASSERT_FALSE(result.ok());
  const auto store = open(dir.path());
  const auto run = store->find_run("latest");
  ASSERT_TRUE(run);
  EXPECT_EQ(run->id, result.report().run_id);
  EXPECT_EQ(run->status, "failed");
  EXPECT_EQ(run->failed, 1u);
  const auto steps = store->step_runs(run->id);
  EXPECT_EQ(step_named(steps, "a")->status, "ran");
  EXPECT_EQ(step_named(steps, "b")->status, "failed");
  EXPECT_EQ(step_named(steps, "b")->attempts, 2u);
  EXPECT_EQ(step_named(steps, "b")->error, "no data for b");
  EXPECT_EQ(step_named(steps, "c")->status, "skipped");
  EXPECT_EQ(step_named(steps, "c")->worker, -1);
}

TEST(tracking, bytes_that_are_not_utf8_are_kept_as_escapes) {
  scratch_directory dir;
  auto s = ps::step<"s">([](ps::context& ctx) {
    ctx.log(std::string("bad \xff\xfe bytes"));
    ctx.log_metric(std::string("m\xc3"), 1.0);
    return 1;
  })();
  const auto result = ps::pipeline<"bytes">(s).run(recorded_in(dir.path()));
  ASSERT_TRUE(result.ok());
  const auto store = open(dir.path());
  const auto logs = store->logs(result.report().run_id);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].line, "bad \\xff\\xfe bytes");
  const auto metrics = store->metrics(result.report().run_id);
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0].name, "m\\xc3");
}

TEST(tracking, metrics_that_are_not_finite_are_recorded_as_they_are) {
  scratch_directory dir;
  auto s = ps::step<"diverges">([](ps::context& ctx) {
    ctx.log_metric("loss", 1.0, 1);
    ctx.log_metric("loss", std::numeric_limits<double>::infinity(), 2);
    ctx.log_metric("loss", std::numeric_limits<double>::quiet_NaN(), 3);
    ctx.log_metric("loss", -std::numeric_limits<double>::infinity(), 4);
    return 1;
  })();
  const auto result = ps::pipeline<"nan">(s).run(recorded_in(dir.path()));
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result.report().warnings.empty()) << result.report().warnings.front();
  const auto metrics = open(dir.path())->metrics(result.report().run_id);
  ASSERT_EQ(metrics.size(), 4u);
  EXPECT_EQ(metrics[0].value, 1.0);
  EXPECT_EQ(metrics[1].value, std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(metrics[2].value));
  EXPECT_EQ(metrics[3].value, -std::numeric_limits<double>::infinity());
}

TEST(tracking, turned_off_it_writes_nothing) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  auto options = recorded_in(dir.path());
  options.tracking.enabled = false;
  const auto result = p.run(options);
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result.report().run_id.empty());
  EXPECT_FALSE(fs::exists(dir.path() / "runs.db"));
}

TEST(tracking, a_workspace_that_cannot_be_written_is_a_warning_not_a_failure) {
  scratch_directory dir;
  std::ofstream(dir.path() / "file") << "x";
  const auto [p, out] = make_training();
  auto options = recorded_in(dir.path());
  options.tracking.workspace = (dir.path() / "file" / "runs.db").string();  // under a file: cannot be made
  const auto result = p.run(options);
  ASSERT_TRUE(result.ok()) << result.report().summary();
  EXPECT_EQ(result.value(out), std::to_string(1.0 / 3));
  ASSERT_EQ(result.report().warnings.size(), 1u);
  EXPECT_NE(result.report().warnings[0].find("is not recorded"), std::string::npos) << result.report().warnings[0];
  EXPECT_NE(result.report().warnings[0].find((dir.path() / "file").string()), std::string::npos)
      << result.report().warnings[0];
}

TEST(tracking, a_workspace_of_a_newer_schema_is_refused_naming_both_versions) {
  scratch_directory dir;
  exec_sql(dir.path() / "runs.db", "CREATE TABLE future(x); PRAGMA user_version=99;");
  const auto [p, out] = make_training();
  const auto result = p.run(recorded_in(dir.path()));
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result.report().warnings.size(), 1u);
  const std::string& w = result.report().warnings[0];
  EXPECT_NE(w.find("schema version 99"), std::string::npos) << w;
  EXPECT_NE(w.find("(" + std::to_string(workspace_store::schema_version) + ")"), std::string::npos) << w;
  try {
    (void)open(dir.path());
    ADD_FAILURE() << "a newer workspace was opened";
  } catch (const cache_error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

TEST(tracking, a_workspace_migrated_by_another_process_while_open_is_opened_again_not_written_in_the_old_schema) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  const auto options = recorded_in(dir.path());
  const auto first = p.run(options);  // this process's connection is open now, and kept
  ASSERT_TRUE(first.ok() && first.report().warnings.empty()) << first.report().summary();
  // A newer penstock migrates the file meanwhile.
  exec_sql(dir.path() / "runs.db", "CREATE TABLE future(x); PRAGMA user_version=99;");
  const auto refused = p.run(options);
  ASSERT_TRUE(refused.ok());
  ASSERT_EQ(refused.report().warnings.size(), 1u) << refused.report().summary();
  const std::string& w = refused.report().warnings[0];
  EXPECT_NE(w.find("schema version 99"), std::string::npos) << w;
  EXPECT_NE(w.find("(" + std::to_string(workspace_store::schema_version) + ")"), std::string::npos) << w;
  // Back at this penstock's schema: recorded again, through a new connection.
  exec_sql(dir.path() / "runs.db",
           "DROP TABLE future; PRAGMA user_version=" + std::to_string(workspace_store::schema_version) + ";");
  const auto again = p.run(options);
  ASSERT_TRUE(again.ok() && again.report().warnings.empty()) << again.report().summary();
  EXPECT_EQ(status_in_file(dir.path(), first.report().run_id), "succeeded");
  EXPECT_EQ(sql_text(dir.path() / "runs.db", "SELECT count(*) FROM runs WHERE id = '" + refused.report().run_id + "'"),
            "0");
  EXPECT_EQ(status_in_file(dir.path(), again.report().run_id), "succeeded");
}

TEST(tracking, the_record_s_wal_is_checkpointed_while_runs_are_recorded_not_left_to_grow) {
  // Runs' commits do not checkpoint (the writer's thread does, beside
  // them) until the WAL is twice as long as SQLite lets it grow: it still
  // starts over, again and again, while runs keep coming.
  scratch_directory dir;
  const auto [p, out] = make_training();
  const auto options = recorded_in(dir.path());
  constexpr int runs = 400;  // some 8 pages each: 3,000 pages in a WAL never checkpointed
  for (int k = 0; k < runs; ++k) ASSERT_TRUE(p.run(options).ok());
  const fs::path file = dir.path() / "runs.db";
  EXPECT_EQ(sql_text(file, "SELECT count(*) FROM runs WHERE status = 'succeeded'"), std::to_string(runs));
  // The frames in the WAL now (wal_checkpoint's second column), before
  // this checkpoint; asked again while the writer's own checkpoint is on
  // (the first column says busy).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  int log = -1;
  std::string error;
  for (int tries = 0; tries < 10'000 && log < 0; ++tries) {
    sqlite3_stmt* q = nullptr;
    const int prepared = sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &q, nullptr);
    const int stepped = prepared == SQLITE_OK ? sqlite3_step(q) : prepared;
    if (stepped == SQLITE_ROW && sqlite3_column_int(q, 0) == 0) {
      log = sqlite3_column_int(q, 1);
    } else {
      error = std::to_string(stepped) + ": " + sqlite3_errmsg(db);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    sqlite3_finalize(q);
  }
  sqlite3_close(db);
  EXPECT_GE(log, 0) << error;
  EXPECT_LT(log, 2500);  // at most some 2,000 pages and a run's
}

TEST(tracking, a_workspace_of_schema_1_is_migrated_and_keeps_its_runs_and_their_lineage) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  const auto first = p.run(recorded_in(dir.path(), true));
  ASSERT_TRUE(first.ok());
  const penstock::digest trained = *first.report().find("train")->output;
  // Back to version 1 as it was: no lineage index.
  exec_sql(dir.path() / "runs.db", "DROP TABLE outcome_values; PRAGMA user_version=1;");
  // The next run migrates it: its index is filled from the runs already there.
  const auto second = p.run(recorded_in(dir.path(), true));
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second.report().warnings.empty()) << second.report().warnings.front();
  const auto store = open(dir.path());
  const auto runs = store->runs({});
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].id, first.report().run_id);
  EXPECT_EQ(store->params(runs[1].id), (std::vector<std::pair<std::string, std::string>>{{"epochs", "3"}}));
  const auto producers = store->producers(trained);
  ASSERT_EQ(producers.size(), 2u);
  EXPECT_EQ(producers[0].run, first.report().run_id);
  EXPECT_EQ(producers[0].status, "ran");
  EXPECT_EQ(producers[1].run, second.report().run_id);
  EXPECT_EQ(producers[1].status, "cached");
}

TEST(tracking, a_damaged_step_table_is_an_error_naming_the_run_not_a_crash) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  const auto run = p.run(recorded_in(dir.path()));
  ASSERT_TRUE(run.ok());
  exec_sql(dir.path() / "runs.db", "UPDATE runs SET timings = x'01ff' WHERE id = '" + run.report().run_id + "'");
  const auto store = open(dir.path());
  try {
    (void)store->step_runs(run.report().run_id);
    ADD_FAILURE() << "a damaged table was read";
  } catch (const cache_error& e) {
    EXPECT_NE(std::string(e.what()).find("damaged"), std::string::npos) << e.what();
  }
  // The other queries still answer.
  EXPECT_EQ(store->find_run("latest")->id, run.report().run_id);
}

TEST(tracking, a_rerun_that_hits_every_step_shares_the_last_runs_outcomes) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.run(recorded_in(dir.path(), true)).ok());
  // First run: its own outcomes (all ran); the two reruns: one table between them.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "runs.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT count(*), (SELECT count(DISTINCT outcomes_id) FROM runs), "
                               "(SELECT count(*) FROM structures) FROM outcome_tables",
                               -1, &q, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 2);
  EXPECT_EQ(sqlite3_column_int(q, 1), 2);
  EXPECT_EQ(sqlite3_column_int(q, 2), 1);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

TEST(tracking, a_run_left_running_by_a_dead_process_or_a_stale_heartbeat_shows_as_crashed) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  ASSERT_TRUE(p.run(recorded_in(dir.path())).ok());  // makes the workspace
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // gone: its pid names no process now
  const auto now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string host = process_identity::current().host;
  exec_sql(dir.path() / "runs.db",
           "INSERT INTO runs(id, experiment, pipeline, structure, status, started, heartbeat, heartbeat_interval, "
           "host, user, pid, directory, git_commit, version) VALUES "
           "('dead-here', 1, 'p', 's', 'running', " +
               std::to_string(now_ns) + ", " + std::to_string(now_ns) + ", 5000, '" + host + "', 'u', " +
               std::to_string(child) + ", '/', '', 'v'), " +
               "('stale-elsewhere', 1, 'p', 's', 'running', 0, 0, 5000, 'another-host', 'u', 1, '/', '', 'v'), " +
               "('alive-elsewhere', 1, 'p', 's', 'running', " + std::to_string(now_ns) + ", " + std::to_string(now_ns) +
               ", 5000, 'another-host', 'u', 1, '/', '', 'v')");
  const auto store = open(dir.path());
  EXPECT_EQ(store->find_run("dead-here")->status, "crashed");
  EXPECT_EQ(store->find_run("stale-elsewhere")->status, "crashed");
  EXPECT_EQ(store->find_run("alive-elsewhere")->status, "running");
  EXPECT_EQ(store->runs({.experiment = {}, .status = "crashed", .pipeline = {}, .params = {}, .limit = 0}).size(), 2u);
}

TEST(tracking, four_runs_at_once_in_one_process_are_all_recorded) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  std::vector<std::string> ids(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      auto options = recorded_in(dir.path(), k % 2 == 0);  // two with the cache, two without
      options.params = {{"epochs", std::to_string(k + 1)}};
      const auto result = p.run(options);
      EXPECT_TRUE(result.ok()) << result.report().summary();
      EXPECT_TRUE(result.report().warnings.empty()) << result.report().warnings.front();
      ids[static_cast<std::size_t>(k)] = result.report().run_id;
    });
  }
  for (auto& t : threads) t.join();
  const auto store = open(dir.path());
  for (int k = 0; k < 4; ++k) {
    const auto& id = ids[static_cast<std::size_t>(k)];
    const auto run = store->find_run(id);
    ASSERT_TRUE(run) << id;
    EXPECT_EQ(run->status, "succeeded");
    EXPECT_EQ(store->params(id), (std::vector<std::pair<std::string, std::string>>{{"epochs", std::to_string(k + 1)}}));
    EXPECT_EQ(store->step_runs(id).size(), 3u);
    EXPECT_EQ(store->logs(id, "train").size(), static_cast<std::size_t>(k + 1));
  }
}

TEST(tracking, run_ids_resolve_by_prefix_and_latest_and_an_ambiguous_prefix_is_refused) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  const auto a = p.run(recorded_in(dir.path()));
  const auto b = p.run(recorded_in(dir.path()));
  const auto store = open(dir.path());
  EXPECT_EQ(store->find_run("latest")->id, b.report().run_id);
  EXPECT_EQ(store->find_run(a.report().run_id.substr(0, a.report().run_id.size() - 2))->id, a.report().run_id);
  EXPECT_FALSE(store->find_run("nosuchrun"));
  // Both ids start with the date and time: a prefix of a few characters names both.
  EXPECT_THROW((void)store->find_run(a.report().run_id.substr(0, 4)), std::invalid_argument);
}

namespace {

// Every event, as text, in the order it came.
class event_log final : public ps::observer {
 public:
  void run_started(const ps::run_start& run) override {
    add("run_started " + std::string(run.graph.name) + " " + std::string(run.experiment));
    graph_ = &run.graph;
  }
  void step_started(std::uint32_t node, int worker) override {
    add("started " + name(node) + (worker >= 0 ? "" : " no worker"));
  }
  void step_retried(std::uint32_t node, std::uint32_t attempt, std::string_view error) override {
    add("retried " + name(node) + " " + std::to_string(attempt) + " " + std::string(error));
  }
  void step_finished(std::uint32_t node, const ps::step_report& report, std::chrono::nanoseconds) override {
    add("finished " + name(node) + " " + (report.cache_hit ? "cached" : ps::to_string(report.status)));
  }
  void log(std::string_view step, std::size_t, std::string_view line) override {
    add("log " + std::string(step) + " " + std::string(line));
  }
  void metric(std::string_view step, std::string_view name, double value, std::int64_t n) override {
    add("metric " + std::string(step) + " " + std::string(name) + " " + std::to_string(value) + " " +
        std::to_string(n));
  }
  void warning(std::string_view message) override { add("warning " + std::string(message)); }
  void run_finished(const ps::run_report& report) override { add("run_finished " + std::to_string(report.ok())); }

  std::vector<std::string> events() {
    const std::scoped_lock lock(mutex_);
    return events_;
  }

 private:
  std::string name(std::uint32_t node) const { return std::string(graph_->nodes[node].name); }
  void add(std::string e) {
    const std::scoped_lock lock(mutex_);
    events_.push_back(std::move(e));
  }
  const ps::graph_description* graph_ = nullptr;
  std::mutex mutex_;
  std::vector<std::string> events_;
};

}  // namespace

TEST(observer, is_told_each_event_in_order) {
  scratch_directory dir;
  std::atomic<int> tries{0};
  auto a = ps::step<"a">([&tries](ps::context& ctx) {
             if (++tries == 1) throw std::runtime_error("first try");
             ctx.log("hello");
             ctx.log_metric("m", 2.5, 7);
             return 1;
           }).retries(1)();
  auto b = ps::step<"b">([](int x) { return x + 1; })(a);
  event_log seen;
  auto options = recorded_in(dir.path());
  options.tracking.enabled = false;
  options.observers = {&seen};
  ASSERT_TRUE(ps::pipeline<"events">(b).run(options).ok());
  EXPECT_EQ(seen.events(), (std::vector<std::string>{"run_started events Default", "started a", "retried a 1 first try",
                                                     "log a hello", "metric a m 2.500000 7", "finished a succeeded",
                                                     "started b", "finished b succeeded", "run_finished 1"}));

  // With the cache, the second run's steps are hits: no step_started.
  event_log cached;
  options.cache.enabled = true;
  options.observers = {};
  ASSERT_TRUE(ps::pipeline<"events">(b).run(options).ok());
  options.observers = {&cached};
  ASSERT_TRUE(ps::pipeline<"events">(b).run(options).ok());
  EXPECT_EQ(cached.events(), (std::vector<std::string>{"run_started events Default", "finished a cached",
                                                       "finished b cached", "run_finished 1"}));
}

TEST(observer, is_told_the_warnings_the_report_keeps) {
  scratch_directory dir;
  std::ofstream(dir.path() / "file") << "x";
  auto a = ps::step<"a">([] { return 1; })();
  event_log seen;
  auto options = recorded_in(dir.path() / "file", true);  // a cache directory that is a file
  options.tracking.enabled = false;
  options.observers = {&seen};
  const auto result = ps::pipeline<"warned">(a).run(options);
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result.report().warnings.size(), 1u);
  const auto events = seen.events();
  EXPECT_NE(std::find(events.begin(), events.end(), "warning " + result.report().warnings[0]), events.end());
}

TEST(tracking, a_run_is_recorded_as_running_while_it_runs_and_as_succeeded_when_run_returns) {
  scratch_directory dir;
  std::atomic<bool> seen{false};
  std::atomic<bool> timed_out{false};
  const fs::path where = dir.path();
  std::string id;
  auto waits = ps::step<"waits">([&] {
    // Its first row is written 50 ms after the run started: until then, and
    // at most 20 s, it polls the file as another process would.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (sql_text(where / "runs.db", "SELECT count(*) FROM runs WHERE status = 'running'") != "1") {
      if (std::chrono::steady_clock::now() > give_up) {
        timed_out = true;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    seen = true;
    return 1;
  })();
  const auto result = ps::pipeline<"long">(waits).run(recorded_in(dir.path()));
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(seen);
  EXPECT_FALSE(timed_out) << "the run was never seen running";
  // Written by the run's own thread before run() returned: another process sees it at once.
  EXPECT_EQ(status_in_file(dir.path(), result.report().run_id), "succeeded");
}

TEST(tracking, a_run_written_behind_is_complete_once_wait_for_records_returns) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  auto options = recorded_in(dir.path());
  options.tracking.write_behind = true;
  std::vector<std::string> ids;
  for (int k = 0; k < 6; ++k) {
    const auto result = p.run(options);
    ASSERT_TRUE(result.ok());
    EXPECT_TRUE(result.report().warnings.empty()) << result.report().warnings.front();
    ids.push_back(result.report().run_id);
  }
  ps::wait_for_records();
  for (const auto& id : ids) {
    EXPECT_EQ(status_in_file(dir.path(), id), "succeeded") << id;
    EXPECT_EQ(sql_text(dir.path() / "runs.db", "SELECT computed FROM runs WHERE id = '" + id + "'"), "3");
  }
  // Nothing left: it returns at once, and again.
  ps::wait_for_records();
  const auto store = open(dir.path());
  for (const auto& id : ids) {
    EXPECT_EQ(store->step_runs(id).size(), 3u);
    EXPECT_EQ(store->logs(id, "train").size(), 3u);
    EXPECT_EQ(store->metrics(id).size(), 4u);
  }
}

TEST(tracking, runs_written_behind_are_complete_when_the_workspace_is_opened_in_the_process) {
  scratch_directory dir;
  const auto [p, out] = make_training();
  auto options = recorded_in(dir.path(), true);
  options.tracking.write_behind = true;
  std::vector<std::string> ids;
  for (int k = 0; k < 4; ++k) {
    options.params = {{"epochs", std::to_string(k + 1)}};
    const auto result = p.run(options);
    ASSERT_TRUE(result.ok());
    ids.push_back(result.report().run_id);
  }
  const auto store = open(dir.path());  // waits for them
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const auto run = store->find_run(ids[k]);
    ASSERT_TRUE(run) << ids[k];
    EXPECT_EQ(run->status, "succeeded");
    EXPECT_EQ(store->step_runs(ids[k]).size(), 3u);
    EXPECT_EQ(store->logs(ids[k], "train").size(), k + 1);
  }
}

TEST(tracking, more_runs_written_behind_than_may_wait_are_all_recorded) {
  scratch_directory dir;
  auto n = ps::param<int>("n", 0);
  auto twice = ps::step<"twice">([](ps::context& ctx, int x) {
    ctx.log("n " + std::to_string(x));
    return 2 * x;
  })(n);
  const auto p = ps::pipeline<"short">(twice);
  auto options = recorded_in(dir.path());
  options.tracking.write_behind = true;
  constexpr int runs = 200;  // more than the 64 that may wait for their last write
  for (int k = 0; k < runs; ++k) {
    options.params = {{"n", std::to_string(k)}};
    ASSERT_TRUE(p.run(options).ok());
  }
  ps::wait_for_records();
  const fs::path file = dir.path() / "runs.db";
  EXPECT_EQ(sql_text(file, "SELECT count(*) FROM runs WHERE status = 'succeeded' AND computed = 1"),
            std::to_string(runs));
  EXPECT_EQ(sql_text(file, "SELECT count(*) FROM logs"), std::to_string(runs));
  EXPECT_EQ(sql_text(file, "SELECT count(DISTINCT value) FROM params WHERE name = 'n'"), std::to_string(runs));
}

// Run by the next test in a process of its own: runs written behind, then
// the process exits (gtest's main returns) without waiting for them.
TEST(tracking_child, DISABLED_runs_written_behind_then_exits) {
  const char* dir = std::getenv("PENSTOCK_TEST_WORKSPACE");
  ASSERT_NE(dir, nullptr);
  const auto [p, out] = make_training();
  auto options = recorded_in(dir);
  options.tracking.write_behind = true;
  std::ofstream ids(fs::path(dir) / "ids");
  for (int k = 0; k < 3; ++k) {
    const auto result = p.run(options);
    ASSERT_TRUE(result.ok());
    ids << result.report().run_id << "\n";
  }
}

TEST(tracking, runs_written_behind_are_complete_when_their_process_exits) {
  scratch_directory dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A fresh process (exec: no state of this one's threads carried over).
    ::setenv("PENSTOCK_TEST_WORKSPACE", dir.path().c_str(), 1);
    ::execl("/proc/self/exe", "test_tracking", "--gtest_filter=tracking_child.DISABLED_runs_written_behind_then_exits",
            "--gtest_also_run_disabled_tests", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream in(dir.path() / "ids");
  std::string id;
  int n = 0;
  while (std::getline(in, id)) {
    ++n;
    EXPECT_EQ(status_in_file(dir.path(), id), "succeeded") << id;
    EXPECT_EQ(sql_text(dir.path() / "runs.db", "SELECT count(*) FROM logs WHERE run = '" + id + "'"), "3") << id;
  }
  EXPECT_EQ(n, 3);
}

// Run by the next test in a process of its own: runs written behind into a
// workspace that cannot be made, then the process exits.
TEST(tracking_child, DISABLED_runs_written_behind_into_a_workspace_that_cannot_be_written) {
  const char* dir = std::getenv("PENSTOCK_TEST_WORKSPACE");
  ASSERT_NE(dir, nullptr);
  auto n = ps::param<int>("n", 0);
  auto twice = ps::step<"twice">([](int x) { return 2 * x; })(n);
  const auto p = ps::pipeline<"short">(twice);
  auto options = recorded_in(dir);
  options.tracking.workspace = (fs::path(dir) / "file" / "runs.db").string();  // under a file: cannot be made
  options.tracking.write_behind = true;
  for (int k = 0; k < 100; ++k) {
    options.params = {{"n", std::to_string(k)}};
    const auto result = p.run(options);
    ASSERT_TRUE(result.ok());
    ASSERT_EQ(result.value(twice), 2 * k);
  }
}

TEST(tracking, runs_written_behind_that_cannot_be_recorded_are_told_in_a_line_or_two_not_one_per_run) {
  scratch_directory dir;
  std::ofstream(dir.path() / "file") << "x";
  const fs::path err = dir.path() / "child.err";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setenv("PENSTOCK_TEST_WORKSPACE", dir.path().c_str(), 1);
    std::FILE* to = std::freopen(err.c_str(), "w", stderr);
    if (to == nullptr) ::_exit(126);
    ::execl("/proc/self/exe", "test_tracking",
            "--gtest_filter=tracking_child.DISABLED_runs_written_behind_into_a_workspace_that_cannot_be_written",
            "--gtest_also_run_disabled_tests", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream in(err);
  std::string line;
  std::vector<std::string> warnings;
  while (std::getline(in, line))
    if (line.starts_with("penstock: warning: ")) warnings.push_back(line);
  // The first failure at once, then how many more failed the same way at exit.
  ASSERT_GE(warnings.size(), 1u);
  EXPECT_LE(warnings.size(), 2u);
  int told = 0;
  for (const auto& w : warnings) {
    EXPECT_NE(w.find((dir.path() / "file").string()), std::string::npos) << w;
    EXPECT_NE(w.find("not recorded"), std::string::npos) << w;
    const auto runs = w.find(" runs (");
    const auto more = w.find(" more runs (");
    if (more != std::string::npos) {
      told += std::stoi(w.substr(w.rfind(' ', more - 1) + 1));
    } else if (runs != std::string::npos) {
      told += std::stoi(w.substr(w.rfind(' ', runs - 1) + 1));
    } else {
      ++told;  // "run ID is not recorded" or "1 more run (ID)"
    }
  }
  EXPECT_EQ(told, 100) << ::testing::PrintToString(warnings);
}
