// workspace_store: the run record's SQLite schema (numbered migrations),
// its writes (one transaction per batch) and the queries behind `runs`,
// `show`, `compare`, `logs` and `lineage`.
#include "workspace_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "cache_store.hpp"

namespace penstock::detail::r1 {

namespace {

namespace fs = std::filesystem;

constexpr std::chrono::milliseconds busy_timeout{std::chrono::seconds{30}};

// Version 1: experiments, runs and what each step did.
constexpr const char* schema_v1 = R"sql(
CREATE TABLE experiments(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
CREATE TABLE runs(
  id TEXT PRIMARY KEY, experiment INTEGER NOT NULL REFERENCES experiments(id),
  pipeline TEXT NOT NULL, structure TEXT NOT NULL, status TEXT NOT NULL,
  started INTEGER NOT NULL, ended INTEGER, heartbeat INTEGER NOT NULL, heartbeat_interval INTEGER NOT NULL,
  host TEXT NOT NULL, user TEXT NOT NULL, pid INTEGER NOT NULL, pid_started INTEGER,
  directory TEXT NOT NULL, git_commit TEXT NOT NULL, git_dirty INTEGER, version TEXT NOT NULL, exit_code INTEGER,
  steps INTEGER NOT NULL DEFAULT 0, computed INTEGER NOT NULL DEFAULT 0, cached INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX runs_by_start ON runs(started DESC);
CREATE TABLE params(run TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(run, name)) WITHOUT ROWID;
CREATE TABLE step_runs(
  run TEXT NOT NULL, node INTEGER NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
  started INTEGER NOT NULL, duration INTEGER NOT NULL, worker INTEGER NOT NULL, cache_key BLOB, output BLOB,
  error TEXT NOT NULL, elements INTEGER NOT NULL, elements_cached INTEGER NOT NULL,
  PRIMARY KEY(run, node)) WITHOUT ROWID;
CREATE TABLE metrics(run TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
  step_number INTEGER NOT NULL, time INTEGER NOT NULL);
CREATE INDEX metrics_by_run ON metrics(run, name, step_number);
CREATE TABLE logs(run TEXT NOT NULL, step TEXT NOT NULL, element INTEGER, time INTEGER NOT NULL, line TEXT NOT NULL);
CREATE INDEX logs_by_run ON logs(run, step);
)sql";

// Version 2: lineage (which step runs read which values), and step runs
// found by the digest of what they produced.
constexpr const char* schema_v2 = R"sql(
CREATE TABLE step_inputs(run TEXT NOT NULL, node INTEGER NOT NULL, position INTEGER NOT NULL,
  producer INTEGER NOT NULL, content BLOB, PRIMARY KEY(run, node, position)) WITHOUT ROWID;
CREATE INDEX step_inputs_by_content ON step_inputs(content) WHERE content IS NOT NULL;
CREATE INDEX step_runs_by_output ON step_runs(output) WHERE output IS NOT NULL;
)sql";

constexpr sqlite::migration migrations[] = {{1, schema_v1}, {2, schema_v2}};
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
}

std::unique_ptr<workspace_store> workspace_store::open_for_writing(const fs::path& file) {
  auto store = std::make_unique<workspace_store>(file);
  store->open_writable();
  return store;
}

std::unique_ptr<workspace_store> workspace_store::open_for_reading(const fs::path& file) {
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
  store->db_.open("file:" + file.string() + "?mode=ro", SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, busy_timeout);
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

void bind_digest(sqlite::query& q, int index, const std::optional<digest>& d) {
  if (d) {
    q.bind(index, *d);
  } else {
    q.bind_null(index);
  }
}

}  // namespace

void workspace_store::write(const run_write& w) {
  const std::string_view run = w.run;
  sqlite::transaction tx(db_, sqlite::transaction_kind::write);
  if (w.begin != nullptr) {
    const run_row& r = *w.begin;
    db_.prepare("INSERT OR IGNORE INTO experiments(name, created) VALUES(?1, ?2)")
        .bind(1, std::string_view(r.experiment))
        .bind(2, ns(r.started))
        .run();
    db_.prepare(
           "INSERT INTO runs(id, experiment, pipeline, structure, status, started, heartbeat, heartbeat_interval, "
           "host, user, pid, pid_started, directory, git_commit, git_dirty, version, steps) "
           "VALUES(?1, (SELECT id FROM experiments WHERE name = ?2), ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
           "?13, ?14, ?15, ?16)")
        .bind(1, run)
        .bind(2, std::string_view(r.experiment))
        .bind(3, std::string_view(r.pipeline))
        .bind(4, std::string_view(r.structure))
        .bind(5, std::string_view(r.status))
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
        .bind(16, static_cast<std::int64_t>(r.steps))
        .run();
    for (const auto& [name, value] : w.params) {
      db_.prepare("INSERT OR REPLACE INTO params(run, name, value) VALUES(?1, ?2, ?3)")
          .bind(1, run)
          .bind(2, std::string_view(name))
          .bind(3, std::string_view(value))
          .run();
    }
  }
  for (const auto& s : w.steps) {
    auto q = db_.prepare(
        "INSERT OR REPLACE INTO step_runs(run, node, name, status, attempts, started, duration, worker, cache_key, "
        "output, error, elements, elements_cached) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
    q.bind(1, run)
        .bind(2, static_cast<std::int64_t>(s.node))
        .bind(3, std::string_view(s.name))
        .bind(4, std::string_view(s.status))
        .bind(5, static_cast<std::int64_t>(s.attempts))
        .bind(6, static_cast<std::int64_t>(s.started.count()))
        .bind(7, static_cast<std::int64_t>(s.duration.count()))
        .bind(8, static_cast<std::int64_t>(s.worker))
        .bind(11, std::string_view(s.error))
        .bind(12, static_cast<std::int64_t>(s.elements))
        .bind(13, static_cast<std::int64_t>(s.elements_cached));
    bind_digest(q, 9, s.key);
    bind_digest(q, 10, s.output);
    q.run();
  }
  for (const auto& in : w.inputs) {
    auto q = db_.prepare(
        "INSERT OR REPLACE INTO step_inputs(run, node, position, producer, content) VALUES(?1, ?2, ?3, ?4, ?5)");
    q.bind(1, run)
        .bind(2, static_cast<std::int64_t>(in.node))
        .bind(3, static_cast<std::int64_t>(in.position))
        .bind(4, static_cast<std::int64_t>(in.producer));
    bind_digest(q, 5, in.content);
    q.run();
  }
  for (const auto& m : w.metrics) {
    db_.prepare("INSERT INTO metrics(run, step, name, value, step_number, time) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(1, run)
        .bind(2, std::string_view(m.step))
        .bind(3, std::string_view(m.name))
        .bind(4, m.value)
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
  if (w.heartbeat) {
    db_.prepare("UPDATE runs SET heartbeat = ?2 WHERE id = ?1").bind(1, run).bind(2, ns(*w.heartbeat)).run();
  }
  if (w.end != nullptr) {
    const run_row& r = *w.end;
    db_.prepare(
           "UPDATE runs SET status = ?2, ended = ?3, heartbeat = ?3, steps = ?4, computed = ?5, cached = ?6, "
           "failed = ?7 WHERE id = ?1")
        .bind(1, run)
        .bind(2, std::string_view(r.status))
        .bind(3, ns(r.ended.value_or(std::chrono::system_clock::now())))
        .bind(4, static_cast<std::int64_t>(r.steps))
        .bind(5, static_cast<std::int64_t>(r.computed))
        .bind(6, static_cast<std::int64_t>(r.cached))
        .bind(7, static_cast<std::int64_t>(r.failed))
        .run();
  }
  tx.commit();
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

std::vector<run_row> workspace_store::runs(const run_filter& filter) {
  // Newest first, read until `limit` runs pass the filters: the status one
  // applies to the status as shown (crashed is derived), the parameters'
  // per run; both after reading.
  static constexpr const char* sql =
      "SELECT r.id, e.name, r.pipeline, r.structure, r.status, r.started, r.ended, r.heartbeat, r.heartbeat_interval, "
      "r.host, r.user, r.pid, r.pid_started, r.directory, r.git_commit, r.git_dirty, r.version, r.exit_code, r.steps, "
      "r.computed, r.cached, r.failed FROM runs r JOIN experiments e ON e.id = r.experiment "
      "WHERE (?1 = '' OR e.name = ?1) AND (?2 = '' OR r.pipeline = ?2) ORDER BY r.started DESC, r.id DESC";
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
        return std::find(given.begin(), given.end(), wanted) != given.end();
      });
      if (!all) continue;
    }
    out.push_back(std::move(r));
    if (filter.limit != 0 && out.size() == filter.limit) break;
  }
  return out;
}

std::optional<run_row> workspace_store::find_run(std::string_view id) {
  static constexpr const char* latest_sql =
      "SELECT r.id, e.name, r.pipeline, r.structure, r.status, r.started, r.ended, r.heartbeat, r.heartbeat_interval, "
      "r.host, r.user, r.pid, r.pid_started, r.directory, r.git_commit, r.git_dirty, r.version, r.exit_code, r.steps, "
      "r.computed, r.cached, r.failed FROM runs r JOIN experiments e ON e.id = r.experiment "
      "ORDER BY r.started DESC, r.id DESC LIMIT 1";
  // A prefix: ids from it up to the next string that does not start with it.
  static constexpr const char* prefix_sql =
      "SELECT r.id, e.name, r.pipeline, r.structure, r.status, r.started, r.ended, r.heartbeat, r.heartbeat_interval, "
      "r.host, r.user, r.pid, r.pid_started, r.directory, r.git_commit, r.git_dirty, r.version, r.exit_code, r.steps, "
      "r.computed, r.cached, r.failed FROM runs r JOIN experiments e ON e.id = r.experiment "
      "WHERE substr(r.id, 1, length(?1)) = ?1 ORDER BY r.id LIMIT 6";
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

std::vector<std::pair<std::string, std::string>> workspace_store::params(std::string_view run) {
  std::vector<std::pair<std::string, std::string>> out;
  auto q = db_.prepare("SELECT name, value FROM params WHERE run = ?1 ORDER BY name");
  q.bind(1, run);
  while (q.step()) out.emplace_back(q.text(0), q.text(1));
  return out;
}

std::vector<step_run_row> workspace_store::step_runs(std::string_view run) {
  std::vector<step_run_row> out;
  auto q = db_.prepare(
      "SELECT node, name, status, attempts, started, duration, worker, cache_key, output, error, elements, "
      "elements_cached FROM step_runs WHERE run = ?1 ORDER BY node");
  q.bind(1, run);
  while (q.step()) {
    step_run_row s;
    s.node = static_cast<std::uint32_t>(q.integer(0));
    s.name = q.text(1);
    s.status = q.text(2);
    s.attempts = static_cast<std::uint32_t>(q.integer(3));
    s.started = std::chrono::nanoseconds(q.integer(4));
    s.duration = std::chrono::nanoseconds(q.integer(5));
    s.worker = static_cast<int>(q.integer(6));
    s.key = q.digest_at(7);
    s.output = q.digest_at(8);
    s.error = q.text(9);
    s.elements = static_cast<std::uint64_t>(q.integer(10));
    s.elements_cached = static_cast<std::uint64_t>(q.integer(11));
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<step_input_row> workspace_store::step_inputs(std::string_view run) {
  std::vector<step_input_row> out;
  auto q =
      db_.prepare("SELECT node, position, producer, content FROM step_inputs WHERE run = ?1 ORDER BY node, position");
  q.bind(1, run);
  while (q.step()) {
    out.push_back({.node = static_cast<std::uint32_t>(q.integer(0)),
                   .position = static_cast<std::uint32_t>(q.integer(1)),
                   .producer = static_cast<std::uint32_t>(q.integer(2)),
                   .content = q.digest_at(3)});
  }
  return out;
}

std::vector<metric_row> workspace_store::metrics(std::string_view run) {
  std::vector<metric_row> out;
  auto q = db_.prepare(
      "SELECT step, name, value, step_number, time FROM metrics WHERE run = ?1 ORDER BY name, step_number, rowid");
  q.bind(1, run);
  while (q.step()) {
    out.push_back({.step = q.text(0),
                   .name = q.text(1),
                   .value = q.real(2),
                   .step_number = q.integer(3),
                   .time = from(q.integer(4))});
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

std::vector<lineage_row> workspace_store::producers(const digest& content) {
  std::vector<lineage_row> out;
  auto q = db_.prepare(
      "SELECT s.run, s.name, s.status, r.started FROM step_runs s JOIN runs r ON r.id = s.run "
      "WHERE s.output = ?1 ORDER BY r.started, s.run");
  q.bind(1, content);
  while (q.step()) {
    out.push_back(
        {.run = q.text(0), .step = q.text(1), .status = q.text(2), .started = from(q.integer(3)), .content = content});
  }
  return out;
}

std::vector<lineage_row> workspace_store::consumers(const digest& content) {
  std::vector<lineage_row> out;
  auto q = db_.prepare(
      "SELECT DISTINCT i.run, s.name, s.status, r.started FROM step_inputs i "
      "JOIN step_runs s ON s.run = i.run AND s.node = i.node JOIN runs r ON r.id = i.run "
      "WHERE i.content = ?1 ORDER BY r.started, i.run, s.node");
  q.bind(1, content);
  while (q.step()) {
    out.push_back({.run = q.text(0),
                   .step = q.text(1),
                   .status = q.text(2),
                   .started = from(q.integer(3)),
                   .content = std::nullopt});
  }
  return out;
}

std::vector<digest> workspace_store::digests_with_prefix(std::string_view prefix) {
  // Digests are stored as bytes, high word first: their hex sorts alike.
  std::vector<digest> out;
  auto q = db_.prepare(
      "SELECT DISTINCT output FROM step_runs WHERE output IS NOT NULL AND substr(lower(hex(output)), 1, length(?1)) = "
      "?1 "
      "LIMIT 6");
  q.bind(1, prefix);
  while (q.step()) {
    if (auto d = q.digest_at(0)) out.push_back(*d);
  }
  return out;
}

}  // namespace penstock::detail::r1
