// workspace_store: the run record's SQLite schema (numbered migrations),
// its writes (one transaction per batch) and the queries behind `runs`,
// `show`, `compare`, `logs` and `lineage`.
#include "workspace_store.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <system_error>
#include <tuple>

#include <fmt/format.h>

#include "cache_store.hpp"
#include "record_writer.hpp"

namespace penstock::detail::r1 {

namespace {

namespace fs = std::filesystem;

constexpr std::chrono::milliseconds busy_timeout{std::chrono::seconds{30}};

// Version 1: experiments, runs and what each step did. A run's steps are
// three byte strings (step_tables.hpp): its pipeline's structure, shared by
// every run of that structure; its outcomes, shared by every run with the
// same ones (each rerun that hits every step); its timings, its own.
constexpr const char* schema_v1 = R"sql(
CREATE TABLE experiments(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
CREATE TABLE structures(id INTEGER PRIMARY KEY, digest BLOB NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE outcome_tables(id INTEGER PRIMARY KEY, digest BLOB NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE runs(
  id TEXT PRIMARY KEY, experiment INTEGER NOT NULL REFERENCES experiments(id),
  pipeline TEXT NOT NULL, structure TEXT NOT NULL, status TEXT NOT NULL,
  started INTEGER NOT NULL, ended INTEGER, heartbeat INTEGER NOT NULL, heartbeat_interval INTEGER NOT NULL,
  host TEXT NOT NULL, user TEXT NOT NULL, pid INTEGER NOT NULL, pid_started INTEGER,
  directory TEXT NOT NULL, git_commit TEXT NOT NULL, git_dirty INTEGER, version TEXT NOT NULL, exit_code INTEGER,
  steps INTEGER NOT NULL DEFAULT 0, computed INTEGER NOT NULL DEFAULT 0, cached INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  structure_id INTEGER REFERENCES structures(id), outcomes_id INTEGER REFERENCES outcome_tables(id), timings BLOB);
CREATE INDEX runs_by_start ON runs(started DESC);
CREATE INDEX runs_by_outcomes ON runs(outcomes_id);
CREATE TABLE params(run TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(run, name)) WITHOUT ROWID;
CREATE TABLE step_errors(run TEXT NOT NULL, node INTEGER NOT NULL, error TEXT NOT NULL, PRIMARY KEY(run, node))
  WITHOUT ROWID;
CREATE TABLE metrics(run TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL, value REAL,
  step_number INTEGER NOT NULL, time INTEGER NOT NULL);
CREATE INDEX metrics_by_run ON metrics(run, name, step_number);
CREATE TABLE logs(run TEXT NOT NULL, step TEXT NOT NULL, element INTEGER, time INTEGER NOT NULL, line TEXT NOT NULL);
CREATE INDEX logs_by_run ON logs(run, step);
)sql";

// Version 2: lineage. Which outcomes tables hold a value digest as which
// node's output, so that `lineage` finds a value's runs without reading
// every table; filled for the tables version 1 left (index_outcomes).
constexpr const char* schema_v2 = R"sql(
CREATE TABLE outcome_values(digest BLOB NOT NULL, outcomes_id INTEGER NOT NULL, node INTEGER NOT NULL,
  PRIMARY KEY(digest, outcomes_id, node)) WITHOUT ROWID;
)sql";

void index_outcomes(sqlite::database& db, std::int64_t id, const std::vector<step_outcome>& outcomes) {
  for (std::uint32_t node = 0; node < outcomes.size(); ++node) {
    if (!outcomes[node].output) continue;
    db.prepare("INSERT OR IGNORE INTO outcome_values(digest, outcomes_id, node) VALUES(?1, ?2, ?3)")
        .bind(1, *outcomes[node].output)
        .bind(2, id)
        .bind(3, static_cast<std::int64_t>(node))
        .run();
  }
}

void index_existing_outcomes(sqlite::database& db) {
  std::vector<std::pair<std::int64_t, std::string>> tables;
  {
    auto q = db.prepare("SELECT id, data FROM outcome_tables");
    while (q.step()) tables.emplace_back(q.integer(0), std::string(q.text_view(1)));
  }
  for (const auto& [id, data] : tables) {
    try {
      index_outcomes(db, id, decode_outcomes(data));
    } catch (const cache_error&) {
      // A damaged table stays unindexed: its runs show no lineage, the rest do.
    }
  }
}

constexpr sqlite::migration migrations[] = {{1, schema_v1, nullptr}, {2, schema_v2, index_existing_outcomes}};
static_assert(migrations[std::size(migrations) - 1].version == workspace_store::schema_version);

std::int64_t ns(sys_time t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
sys_time from(std::int64_t ns) noexcept {
  return sys_time(std::chrono::duration_cast<sys_time::duration>(std::chrono::nanoseconds(ns)));
}
std::optional<std::int64_t> nullable(const sqlite::query& q, int column) {
  if (q.type(column) == SQLITE_NULL) return std::nullopt;
  return q.integer(column);
}

}  // namespace

fs::path workspace_file(const fs::path& cache_directory) { return cache_directory / "runs.db"; }

fs::path cache_directory_of(const run_options& options) {
  return options.cache.directory.empty() ? default_cache_directory() : fs::path(options.cache.directory);
}

fs::path workspace_of(const run_options& options) {
  return options.tracking.workspace.empty() ? workspace_file(cache_directory_of(options))
                                            : fs::path(options.tracking.workspace);
}

workspace_store::workspace_store(const fs::path& file) : db_(file, "workspace"), me_(process_identity::current()) {}

void workspace_store::open_writable() {
  std::error_code ec;
  if (!file().parent_path().empty()) fs::create_directories(file().parent_path(), ec);
  if (ec) {
    throw cache_error(fmt::format("workspace {}: cannot create its directory: {}", file().string(), ec.message()));
  }
  db_.open(file().string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, busy_timeout);
  if (db_.read_only()) throw cache_error(fmt::format("workspace {} opens read-only", file().string()));
  db_.use_wal();
  sqlite::migrate(db_, migrations);
  struct stat st {};
  if (::stat(file().c_str(), &st) == 0) {
    device_ = static_cast<std::uint64_t>(st.st_dev);
    inode_ = static_cast<std::uint64_t>(st.st_ino);
  }
}

std::shared_ptr<workspace_store> workspace_store::shared_for_writing(const fs::path& file) {
  // Never destroyed: the record's writer writes as the process exits.
  static auto* mutex = new std::mutex;
  static auto* stores = new std::map<std::string, std::shared_ptr<workspace_store>>;
  const std::string key = fs::absolute(file).lexically_normal().string();
  const std::scoped_lock lock(*mutex);
  auto& store = (*stores)[key];
  if (store != nullptr) {
    struct stat st {};
    const bool same = ::stat(file.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == store->device_ &&
                      static_cast<std::uint64_t>(st.st_ino) == store->inode_;
    // Another process may have migrated it (or a newer penstock may have):
    // each write checks the schema in its transaction, and a connection
    // that found it changed is opened again.
    bool current = false;
    if (same && store->db_.opened_here()) {
      // Under the store's own lock: a recorder of another run may be writing through it.
      const std::scoped_lock writing(store->write_mutex_);
      current = !store->stale_;
    }
    if (!current) store.reset();
  }
  if (store == nullptr) {
    store = std::make_unique<workspace_store>(file);
    store->open_writable();
    store->db_.defer_checkpoints();
    store->shared_ = true;
  }
  return store;
}

bool workspace_store::wal_is_long() {
  const std::scoped_lock lock(write_mutex_);
  return db_.wal_is_long();
}

void workspace_store::checkpoint_wal(const fs::path& file) {
  sqlite::database db(file, "workspace");
  db.open(file.string(), SQLITE_OPEN_READWRITE, busy_timeout);
  // Synced as the committing connections are (NORMAL: the checkpoint syncs the WAL, then the file).
  db.exec("PRAGMA synchronous=NORMAL");
  if (const int rc = db.checkpoint(); rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) db.fail(rc, "cannot checkpoint");
}

std::unique_ptr<workspace_store> workspace_store::open_for_writing(const fs::path& file) {
  // What this process's runs recorded is all there.
  record_writer::wait_for_ended_runs();
  auto store = std::make_unique<workspace_store>(file);
  store->open_writable();
  return store;
}

std::unique_ptr<workspace_store> workspace_store::open_for_reading(const fs::path& file) {
  record_writer::wait_for_ended_runs();
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    throw cache_error(fmt::format("no workspace at {}: no run has been recorded there", file.string()));
  }
  auto store = std::make_unique<workspace_store>(file);
  try {
    store->open_writable();  // migrates an older schema
    return store;
  } catch (const cache_error& e) {
    if (std::string_view(e.what()).find("newer than") != std::string_view::npos) throw;
  }
  // Read-only: queries only, on a schema that needs no migration.
  store->db_.open(file.string(), SQLITE_OPEN_READONLY, busy_timeout);
  const std::int64_t version = store->db_.user_version();
  if (version != schema_version) {
    throw cache_error(
        fmt::format("workspace {} has schema version {}; this penstock reads version {} and cannot "
                    "migrate it without write access",
                    file.string(), version, schema_version));
  }
  return store;
}

namespace {

std::span<const std::byte> bytes_of(std::string_view text) noexcept {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

std::string_view blob_at(const sqlite::query& q, int column) {
  const auto bytes = q.bytes_at(column);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The id of the row of `table` (structures or outcome_tables) holding
// `data`, found by its digest, or inserted; `inserted` says which.
std::int64_t stored(sqlite::database& db, const char* select_sql, const char* insert_sql, std::string_view data,
                    bool& inserted) {
  const digest d = hasher().update(data.data(), data.size()).finish();
  {
    auto q = db.prepare(select_sql);
    q.bind(1, d);
    if (q.step()) {
      inserted = false;
      return q.integer(0);
    }
  }
  auto q = db.prepare(insert_sql);
  q.bind(1, d).bind(2, bytes_of(data));
  q.run();
  inserted = true;
  return db.last_insert_rowid();
}

}  // namespace

std::int64_t workspace_store::structure_id(const run_structure& structure) {
  {
    // Known structures are found by digest without encoding them again.
    auto q = db_.prepare("SELECT id FROM structures WHERE digest = ?1");
    q.bind(1, structure.hash);
    if (q.step()) return q.integer(0);
  }
  if (structure.data.empty() && structure.graph == nullptr)
    throw cache_error(fmt::format("workspace {} has lost the pipeline's structure {} (was it replaced?)",
                                  file().string(), structure.hash.hex()));
  const std::string data = structure.data.empty() ? encode_structure(*structure.graph) : structure.data;
  db_.prepare("INSERT INTO structures(digest, data) VALUES(?1, ?2)")
      .bind(1, structure.hash)
      .bind(2, bytes_of(data))
      .run();
  return db_.last_insert_rowid();
}

std::int64_t workspace_store::write_steps(std::string_view run, const run_steps& steps) {
  bool inserted = false;
  const std::int64_t outcomes_id =
      stored(db_, "SELECT id FROM outcome_tables WHERE digest = ?1",
             "INSERT INTO outcome_tables(digest, data) VALUES(?1, ?2)", steps.outcomes, inserted);
  if (inserted) index_outcomes(db_, outcomes_id, decode_outcomes(steps.outcomes));
  for (const auto& [node, error] : steps.errors) {
    db_.prepare("INSERT OR REPLACE INTO step_errors(run, node, error) VALUES(?1, ?2, ?3)")
        .bind(1, run)
        .bind(2, static_cast<std::int64_t>(node))
        .bind(3, std::string_view(error))
        .run();
  }
  return outcomes_id;
}

void workspace_store::write(const run_write& w) { write(std::span(&w, 1)); }

void workspace_store::write(std::span<const run_write> writes) {
  const std::scoped_lock lock(write_mutex_);
  sqlite::transaction tx(db_, sqlite::transaction_kind::write);
  // In the transaction, no other process can migrate the file meanwhile.
  if (shared_) {
    if (const auto version = db_.user_version(); version != schema_version) {
      stale_ = true;
      throw schema_changed(fmt::format("workspace {} changed from schema version {} to {} while open", file().string(),
                                       schema_version, version));
    }
  }
  for (const auto& w : writes) apply(w);
  tx.commit();
}

void workspace_store::apply(const run_write& w) {
  const std::string_view run = w.run;
  const std::optional<std::int64_t> outcomes =
      w.steps != nullptr ? std::optional(write_steps(run, *w.steps)) : std::nullopt;
  const auto bind_timings = [&w](sqlite::query& q, int index) {
    if (w.steps != nullptr) {
      q.bind(index, bytes_of(w.steps->timings));
    } else {
      q.bind_null(index);
    }
  };
  if (w.begin != nullptr) {
    const run_row& r = *w.begin;
    const std::optional<std::int64_t> structure =
        w.structure != nullptr ? std::optional<std::int64_t>(structure_id(*w.structure)) : std::nullopt;
    db_.prepare("INSERT OR IGNORE INTO experiments(name, created) VALUES(?1, ?2)")
        .bind(1, std::string_view(r.experiment))
        .bind(2, ns(r.started))
        .run();
    // A run that ends in its first write (most short runs) is written
    // whole in one INSERT, its end too: not inserted, then rewritten.
    const run_row* const e = w.end;
    const std::int64_t now = ns(std::chrono::system_clock::now());
    const std::int64_t ended = e != nullptr ? ns(e->ended.value_or(std::chrono::system_clock::now())) : now;
    auto q = db_.prepare(
        "INSERT INTO runs(id, experiment, pipeline, structure, status, started, heartbeat, heartbeat_interval, "
        "host, user, pid, pid_started, directory, git_commit, git_dirty, version, steps, structure_id, ended, "
        "computed, cached, failed, outcomes_id, timings) "
        "VALUES(?1, (SELECT id FROM experiments WHERE name = ?2), ?3, ?4, ?5, ?6, ?17, ?7, ?8, ?9, ?10, ?11, ?12, "
        "?13, ?14, ?15, ?16, ?18, ?19, ?20, ?21, ?22, ?23, ?24)");
    q.bind(1, run)
        .bind(2, std::string_view(r.experiment))
        .bind(3, std::string_view(r.pipeline))
        .bind(4, std::string_view(r.structure))
        .bind(5, std::string_view(e != nullptr ? e->status : r.status))
        .bind(6, ns(r.started))
        .bind(7, static_cast<std::int64_t>(r.heartbeat_interval.count()))
        .bind(8, std::string_view(r.host))
        .bind(9, std::string_view(r.user))
        .bind(10, r.pid)
        .bind(11, r.pid_started)
        .bind(12, std::string_view(r.directory))
        .bind(13, std::string_view(r.git_commit))
        .bind(14, r.git_dirty ? std::optional<std::int64_t>(*r.git_dirty ? 1 : 0) : std::nullopt)
        .bind(15, std::string_view(r.version))
        .bind(16, static_cast<std::int64_t>(e != nullptr ? e->steps : r.steps))
        .bind(17, e != nullptr ? ended : now)  // its first heartbeat: now, not when it started
        .bind(18, structure)
        .bind(19, e != nullptr ? std::optional(ended) : std::nullopt)
        .bind(20, static_cast<std::int64_t>(e != nullptr ? e->computed : 0))
        .bind(21, static_cast<std::int64_t>(e != nullptr ? e->cached : 0))
        .bind(22, static_cast<std::int64_t>(e != nullptr ? e->failed : 0))
        .bind(23, outcomes);
    bind_timings(q, 24);
    q.run();
    for (const auto& [name, value] : w.params) {
      db_.prepare("INSERT OR REPLACE INTO params(run, name, value) VALUES(?1, ?2, ?3)")
          .bind(1, run)
          .bind(2, std::string_view(name))
          .bind(3, std::string_view(value))
          .run();
    }
  }
  for (const auto& m : w.metrics) {
    db_.prepare("INSERT INTO metrics(run, step, name, value, step_number, time) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(1, run)
        .bind(2, std::string_view(m.step))
        .bind(3, std::string_view(m.name))
        .bind(4, m.value)  // NaN is stored as NULL (SQLite has no NaN); infinities as they are
        .bind(5, m.step_number)
        .bind(6, ns(m.time))
        .run();
  }
  for (const auto& l : w.logs) {
    db_.prepare("INSERT INTO logs(run, step, element, time, line) VALUES(?1, ?2, ?3, ?4, ?5)")
        .bind(1, run)
        .bind(2, std::string_view(l.step))
        .bind(3, l.element ? std::optional<std::int64_t>(static_cast<std::int64_t>(*l.element)) : std::nullopt)
        .bind(4, ns(l.time))
        .bind(5, std::string_view(l.line))
        .run();
  }
  if (w.end != nullptr && w.begin == nullptr) {
    // One UPDATE of the row for its end (a row rewritten with a 10,000-step
    // run's timings rewrites their overflow pages).
    const run_row& r = *w.end;
    auto q = db_.prepare(
        "UPDATE runs SET status = ?2, ended = ?3, heartbeat = ?3, steps = ?4, computed = ?5, cached = ?6, "
        "failed = ?7, outcomes_id = coalesce(?8, outcomes_id), timings = coalesce(?9, timings) WHERE id = ?1");
    bind_timings(q, 9);
    q.bind(1, run)
        .bind(2, std::string_view(r.status))
        .bind(3, ns(r.ended.value_or(std::chrono::system_clock::now())))
        .bind(4, static_cast<std::int64_t>(r.steps))
        .bind(5, static_cast<std::int64_t>(r.computed))
        .bind(6, static_cast<std::int64_t>(r.cached))
        .bind(7, static_cast<std::int64_t>(r.failed))
        .bind(8, outcomes)
        .run();
  } else if (w.heartbeat && w.end == nullptr) {
    db_.prepare("UPDATE runs SET heartbeat = ?2 WHERE id = ?1").bind(1, run).bind(2, ns(*w.heartbeat)).run();
  }
}

void workspace_store::set_exit_code(std::string_view run, int code) {
  db_.prepare("UPDATE runs SET exit_code = ?2 WHERE id = ?1").bind(1, run).bind(2, std::int64_t{code}).run();
}

run_row workspace_store::read_run(const sqlite::query& q) const {
  run_row r;
  r.id = q.text(0);
  r.experiment = q.text(1);
  r.pipeline = q.text(2);
  r.structure = q.text(3);
  r.status = q.text(4);
  r.started = from(q.integer(5));
  if (const auto ended = nullable(q, 6)) r.ended = from(*ended);
  r.heartbeat = from(q.integer(7));
  r.heartbeat_interval = std::chrono::milliseconds(q.integer(8));
  r.host = q.text(9);
  r.user = q.text(10);
  r.pid = q.integer(11);
  r.pid_started = nullable(q, 12);
  r.directory = q.text(13);
  r.git_commit = q.text(14);
  if (const auto dirty = nullable(q, 15)) r.git_dirty = *dirty != 0;
  r.version = q.text(16);
  if (const auto code = nullable(q, 17)) r.exit_code = static_cast<int>(*code);
  r.steps = static_cast<std::uint64_t>(q.integer(18));
  r.computed = static_cast<std::uint64_t>(q.integer(19));
  r.cached = static_cast<std::uint64_t>(q.integer(20));
  r.failed = static_cast<std::uint64_t>(q.integer(21));
  // Still marked running: crashed if its process is certainly gone (this
  // host), or if it has not refreshed its heartbeat for three intervals.
  if (r.status == "running") {
    const bool gone = r.host == me_.host && me_.other_gone(r.pid, r.pid_started);
    const auto stale = std::chrono::system_clock::now() - r.heartbeat >
                       3 * std::max<std::chrono::milliseconds>(r.heartbeat_interval, std::chrono::seconds(1));
    if (gone || stale) r.status = "crashed";
  }
  return r;
}

// The columns read_run() reads, in its order: a run joined with its experiment.
#define SELECT_RUNS                                                                                                 \
  "SELECT r.id, e.name, r.pipeline, r.structure, r.status, r.started, r.ended, r.heartbeat, r.heartbeat_interval, " \
  "r.host, r.user, r.pid, r.pid_started, r.directory, r.git_commit, r.git_dirty, r.version, r.exit_code, r.steps, " \
  "r.computed, r.cached, r.failed FROM runs r JOIN experiments e ON e.id = r.experiment "

std::vector<run_row> workspace_store::runs(const run_filter& filter) {
  // Newest first, read until `limit` runs pass the filters: the status one
  // applies to the status as shown (crashed is derived), the parameters'
  // per run; both after reading.
  static constexpr const char* sql =
      SELECT_RUNS "WHERE (?1 = '' OR e.name = ?1) AND (?2 = '' OR r.pipeline = ?2) ORDER BY r.started DESC, r.id DESC";
  std::vector<run_row> out;
  sqlite::transaction tx(db_, sqlite::transaction_kind::read);
  auto q = db_.prepare(sql);
  q.bind(1, std::string_view(filter.experiment)).bind(2, std::string_view(filter.pipeline));
  while (q.step()) {
    run_row r = read_run(q);
    if (!filter.status.empty() && r.status != filter.status) continue;
    if (!filter.params.empty()) {
      const auto given = params(r.id);
      const bool all = std::all_of(filter.params.begin(), filter.params.end(), [&](const auto& wanted) {
        // A string parameter is recorded as shown, in quotes: "cafe" or cafe finds it.
        return std::any_of(given.begin(), given.end(), [&](const auto& p) {
          return p.first == wanted.first &&
                 (p.second == wanted.second ||
                  (p.second.size() == wanted.second.size() + 2 && p.second.front() == '"' && p.second.back() == '"' &&
                   p.second.compare(1, wanted.second.size(), wanted.second) == 0));
        });
      });
      if (!all) continue;
    }
    out.push_back(std::move(r));
    if (filter.limit != 0 && out.size() == filter.limit) break;
  }
  return out;
}

std::optional<run_row> workspace_store::find_run(std::string_view id) {
  static constexpr const char* latest_sql = SELECT_RUNS "ORDER BY r.started DESC, r.id DESC LIMIT 1";
  // The ids that start with `id`: six at most, enough to say it is ambiguous.
  static constexpr const char* prefix_sql = SELECT_RUNS "WHERE substr(r.id, 1, length(?1)) = ?1 ORDER BY r.id LIMIT 6";
  if (id.empty()) return std::nullopt;
  auto q = db_.prepare(id == "latest" ? latest_sql : prefix_sql);
  if (id != "latest") q.bind(1, id);
  std::vector<run_row> found;
  while (q.step()) {
    found.push_back(read_run(q));
    if (found.back().id == id) return std::move(found.back());  // an exact id, even if it prefixes another
  }
  if (found.size() > 1) {
    std::string ids;
    for (std::size_t i = 0; i < found.size() && i < 5; ++i) ids += (i == 0 ? "" : ", ") + found[i].id;
    throw std::invalid_argument(fmt::format("run '{}' is ambiguous: it starts {}{}; give more of the id", id, ids,
                                            found.size() > 5 ? ", ..." : ""));
  }
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
}

#undef SELECT_RUNS

std::vector<std::pair<std::string, std::string>> workspace_store::params(std::string_view run) {
  std::vector<std::pair<std::string, std::string>> out;
  auto q = db_.prepare("SELECT name, value FROM params WHERE run = ?1 ORDER BY name");
  q.bind(1, run);
  while (q.step()) out.emplace_back(q.text(0), q.text(1));
  return out;
}

std::optional<workspace_store::stored_steps> workspace_store::steps_of(std::string_view run) {
  auto q = db_.prepare(
      "SELECT s.data, o.data, r.timings FROM runs r JOIN structures s ON s.id = r.structure_id "
      "JOIN outcome_tables o ON o.id = r.outcomes_id WHERE r.id = ?1");
  q.bind(1, run);
  if (!q.step()) return std::nullopt;
  stored_steps out{.structure = decode_structure(blob_at(q, 0)),
                   .outcomes = decode_outcomes(blob_at(q, 1)),
                   .timings = decode_timings(blob_at(q, 2))};
  const std::size_t n = out.structure.names.size();
  if (out.outcomes.size() != n || out.timings.size() != n) {
    throw cache_error(
        fmt::format("workspace {}: run {} has {} steps, {} outcomes and {} timings: its record is damaged",
                    file().string(), run, n, out.outcomes.size(), out.timings.size()));
  }
  return out;
}

std::vector<step_run_row> workspace_store::step_runs(std::string_view run) {
  std::vector<step_run_row> out;
  const auto steps = steps_of(run);
  if (!steps) return out;
  out.reserve(steps->structure.names.size());
  for (std::uint32_t i = 0; i < steps->structure.names.size(); ++i) {
    const auto& o = steps->outcomes[i];
    const auto& t = steps->timings[i];
    out.push_back({.node = i,
                   .name = steps->structure.names[i],
                   .status = to_string(o.status),
                   .attempts = o.attempts,
                   .started = t.started,
                   .duration = t.duration,
                   .worker = t.worker,
                   .key = o.key,
                   .output = o.output,
                   .error = {},
                   .elements = o.elements,
                   .elements_cached = o.elements_cached});
  }
  auto q = db_.prepare("SELECT node, error FROM step_errors WHERE run = ?1");
  q.bind(1, run);
  while (q.step()) {
    const auto node = static_cast<std::uint64_t>(q.integer(0));
    if (node < out.size()) out[node].error = q.text(1);
  }
  return out;
}

std::vector<step_input_row> workspace_store::step_inputs(std::string_view run) {
  std::vector<step_input_row> out;
  const auto steps = steps_of(run);
  if (!steps) return out;
  for (std::uint32_t i = 0; i < steps->structure.inputs.size(); ++i) {
    const auto& inputs = steps->structure.inputs[i];
    for (std::uint32_t j = 0; j < inputs.size(); ++j)
      out.push_back({.node = i, .position = j, .producer = inputs[j], .content = steps->outcomes[inputs[j]].output});
  }
  return out;
}

namespace {

// A run's metrics as stored, one step's or all: ordered by name, step number, then as logged.
std::vector<metric_row> read_metrics(sqlite::database& db, std::string_view run, std::string_view step,
                                     const std::string& from_run) {
  std::vector<metric_row> out;
  auto q = db.prepare(
      "SELECT step, name, value, step_number, time FROM metrics WHERE run = ?1 AND (?2 = '' OR step = ?2) "
      "ORDER BY name, step_number, rowid");
  q.bind(1, run).bind(2, step);
  while (q.step()) {
    out.push_back({.step = q.text(0),
                   .name = q.text(1),
                   .value = q.type(2) == SQLITE_NULL ? std::numeric_limits<double>::quiet_NaN() : q.real(2),
                   .step_number = q.integer(3),
                   .time = from(q.integer(4)),
                   .from_run = from_run});
  }
  return out;
}

}  // namespace

std::vector<metric_row> workspace_store::metrics(std::string_view run) {
  sqlite::transaction tx(db_, sqlite::transaction_kind::read);
  std::vector<metric_row> out = read_metrics(db_, run, {}, {});
  std::vector<step_run_row> hits;
  try {
    hits = step_runs(run);
  } catch (const cache_error&) {
    return out;  // its step table is damaged: its own metrics only (`show` says what is damaged)
  }
  std::erase_if(hits, [](const step_run_row& s) { return s.status != "cached" || !s.output || !s.key; });
  if (hits.empty()) return out;
  // Of those, the steps that log metrics in some run (most steps never do:
  // one pass over the names, not a lineage per step).
  std::set<std::string> logging;
  {
    auto q = db_.prepare("SELECT DISTINCT step FROM metrics");
    while (q.step()) logging.insert(q.text(0));
  }
  std::erase_if(hits, [&](const step_run_row& s) { return !logging.contains(s.name); });
  if (hits.empty()) return out;
  const auto started = find_run(run);
  if (!started) return out;
  bool added = false;
  for (const auto& s : hits) {
    // The latest run before this one that computed this step with this key.
    std::optional<lineage_row> maker;
    for (auto& p : producers(*s.output)) {
      if (p.status != "ran" || p.step != s.name || p.key != s.key || p.run == run || p.started > started->started)
        continue;
      if (!maker || p.started >= maker->started) maker = std::move(p);
    }
    if (!maker) continue;
    auto reused = read_metrics(db_, maker->run, s.name, maker->run);
    added = added || !reused.empty();
    out.insert(out.end(), std::make_move_iterator(reused.begin()), std::make_move_iterator(reused.end()));
  }
  if (added) {
    std::stable_sort(out.begin(), out.end(), [](const metric_row& a, const metric_row& b) {
      return std::tie(a.name, a.step_number) < std::tie(b.name, b.step_number);
    });
  }
  return out;
}

std::vector<log_row> workspace_store::logs(std::string_view run, std::string_view step) {
  std::vector<log_row> out;
  auto q = db_.prepare(
      "SELECT step, element, time, line FROM logs WHERE run = ?1 AND (?2 = '' OR step = ?2) ORDER BY rowid");
  q.bind(1, run).bind(2, step);
  while (q.step()) {
    log_row l{.step = q.text(0), .element = std::nullopt, .time = from(q.integer(2)), .line = q.text(3)};
    if (const auto e = nullable(q, 1)) l.element = static_cast<std::uint64_t>(*e);
    out.push_back(std::move(l));
  }
  return out;
}

void workspace_store::lineage_of(const digest& content, bool consumers, std::vector<lineage_row>& out) {
  // The outcomes tables holding the value, then the runs that use each.
  std::vector<std::pair<std::int64_t, std::uint32_t>> places;  // outcomes table, node
  {
    auto q = db_.prepare("SELECT outcomes_id, node FROM outcome_values WHERE digest = ?1");
    q.bind(1, content);
    while (q.step()) places.emplace_back(q.integer(0), static_cast<std::uint32_t>(q.integer(1)));
  }
  struct place_run {
    std::string run;
    sys_time started;
    std::int64_t structure;
  };
  std::map<std::int64_t, structure_table> structures;
  for (const auto& [table, node] : places) {
    std::vector<step_outcome> outcomes;
    {
      auto q = db_.prepare("SELECT data FROM outcome_tables WHERE id = ?1");
      q.bind(1, table);
      if (!q.step()) continue;
      outcomes = decode_outcomes(blob_at(q, 0));
    }
    std::vector<place_run> runs;
    {
      auto q = db_.prepare("SELECT id, started, structure_id FROM runs WHERE outcomes_id = ?1");
      q.bind(1, table);
      while (q.step()) runs.push_back({q.text(0), from(q.integer(1)), q.integer(2)});
    }
    for (const auto& r : runs) {
      auto it = structures.find(r.structure);
      if (it == structures.end()) {
        auto q = db_.prepare("SELECT data FROM structures WHERE id = ?1");
        q.bind(1, r.structure);
        if (!q.step()) continue;
        it = structures.emplace(r.structure, decode_structure(blob_at(q, 0))).first;
      }
      const structure_table& st = it->second;
      if (node >= st.names.size() || st.names.size() != outcomes.size()) continue;
      if (!consumers) {
        out.push_back({.run = r.run,
                       .step = st.names[node],
                       .status = to_string(outcomes[node].status),
                       .started = r.started,
                       .content = content,
                       .key = outcomes[node].key});
        continue;
      }
      for (std::uint32_t c = 0; c < st.inputs.size(); ++c) {
        if (std::find(st.inputs[c].begin(), st.inputs[c].end(), node) == st.inputs[c].end()) continue;
        out.push_back({.run = r.run,
                       .step = st.names[c],
                       .status = to_string(outcomes[c].status),
                       .started = r.started,
                       .content = std::nullopt,
                       .key = outcomes[c].key});
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const lineage_row& a, const lineage_row& b) {
    return std::tie(a.started, a.run, a.step) < std::tie(b.started, b.run, b.step);
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const lineage_row& a, const lineage_row& b) { return a.run == b.run && a.step == b.step; }),
            out.end());
}

std::vector<lineage_row> workspace_store::producers(const digest& content) {
  std::vector<lineage_row> out;
  lineage_of(content, false, out);
  return out;
}

std::vector<lineage_row> workspace_store::consumers(const digest& content) {
  std::vector<lineage_row> out;
  lineage_of(content, true, out);
  return out;
}

std::vector<digest> workspace_store::digests_with_prefix(std::string_view prefix) {
  // Digests are stored as bytes, high word first: their hex sorts alike.
  std::vector<digest> out;
  auto q = db_.prepare(
      "SELECT DISTINCT digest FROM outcome_values WHERE substr(lower(hex(digest)), 1, length(?1)) = ?1 LIMIT 6");
  q.bind(1, prefix);
  while (q.step()) {
    if (auto d = q.digest_at(0)) out.push_back(*d);
  }
  return out;
}

}  // namespace penstock::detail::r1
