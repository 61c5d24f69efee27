// run_records: the run and step records a pipeline leaves in the cache index
// (record_run, last_run, record_steps, last_steps): bookkeeping for `cache stats` and `explain`, not cache content.
#include <limits>

#include <sqlite3.h>

#include "cache_store_state.hpp"

namespace penstock::detail::r1 {

namespace {

// INSERT OR REPLACE keeps one row per run_id. The prune keeps the ?1 latest
// runs overall and the latest run of each pipeline (rows whose start time is
// not an integer count as the oldest).
constexpr const char* insert_run_sql =
    "INSERT OR REPLACE INTO runs(run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
// The prune: of the ?1 rows that rank last in that order (the rows beyond
// the kept, ?1 = count - kept), those that are not their pipeline's latest
// (another row of the pipeline ranks before them). It sorts the table once
// and looks each candidate's pipeline up in runs_by_pipeline: ~0.1 ms for
// 1,000 rows where the window query over all rows took ~1.3 ms (a rerun of
// a cached pipeline writes this every time). Checked against the window
// query's rule (rank > kept overall and > 1 within the pipeline) on random
// tables, text and real start times included.
constexpr const char* count_runs_sql = "SELECT count(*) FROM runs";
constexpr const char* prune_runs_sql =
    "DELETE FROM runs WHERE seq IN (SELECT o.seq FROM (SELECT seq, pipeline, typeof(started) = 'integer' AS whole, "
    "started FROM runs ORDER BY typeof(started) = 'integer', started, seq LIMIT ?1) AS o WHERE EXISTS (SELECT 1 "
    "FROM runs AS r WHERE r.pipeline = o.pipeline AND r.seq != o.seq AND ((typeof(r.started) = 'integer') > o.whole "
    "OR ((typeof(r.started) = 'integer') = o.whole AND (r.started > o.started OR (r.started = o.started AND "
    "r.seq > o.seq))))))";
constexpr const char* select_last_run_sql =
    "SELECT run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed FROM runs "
    "WHERE typeof(started) = 'integer' ORDER BY started DESC, seq DESC";
constexpr const char* select_last_run_of_sql =
    "SELECT run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed FROM runs "
    "WHERE pipeline = ?1 AND typeof(started) = 'integer' ORDER BY started DESC, seq DESC";
// The stored row stays when it is newer than the one offered (or is replaced
// when its time is unreadable).
constexpr const char* upsert_step_sql =
    "INSERT INTO steps(pipeline, step, key, components, run_id, recorded) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT(pipeline, step) DO UPDATE SET key = excluded.key, components = excluded.components, "
    "run_id = excluded.run_id, recorded = excluded.recorded "
    "WHERE excluded.recorded >= steps.recorded OR typeof(steps.recorded) != 'integer'";
constexpr const char* select_steps_sql =
    "SELECT step, key, components, run_id, recorded FROM steps WHERE pipeline = ?1 ORDER BY step";

// Parses the columns of select_last_run_sql; nullopt if any has the wrong type.
std::optional<run_record> read_run(const sqlite::query& q) {
  if (q.type(0) != SQLITE_TEXT || q.type(1) != SQLITE_TEXT) return std::nullopt;
  for (int column = 2; column <= 8; ++column) {
    if (q.type(column) != SQLITE_INTEGER) return std::nullopt;
  }
  run_record r;
  r.run_id = q.text(0);
  r.pipeline = q.text(1);
  r.started = from_ns(q.integer(2));
  r.wall = std::chrono::nanoseconds(q.integer(3));
  r.steps = static_cast<std::uint64_t>(q.integer(4));
  r.hits = static_cast<std::uint64_t>(q.integer(5));
  r.computed = static_cast<std::uint64_t>(q.integer(6));
  r.reported_misses = static_cast<std::uint64_t>(q.integer(7));
  r.failed = static_cast<std::uint64_t>(q.integer(8));
  return r;
}

// Parses the columns of select_steps_sql; nullopt if any has the wrong type.
std::optional<step_record> read_step(const sqlite::query& q, std::string_view pipeline) {
  const auto key = q.digest_at(1);
  if (q.type(0) != SQLITE_TEXT || !key || q.type(2) != SQLITE_TEXT || q.type(3) != SQLITE_TEXT ||
      q.type(4) != SQLITE_INTEGER) {
    return std::nullopt;
  }
  step_record r;
  r.pipeline = pipeline;
  r.step = q.text(0);
  r.key = *key;
  r.components = q.text(2);
  r.run_id = q.text(3);
  r.when = from_ns(q.integer(4));
  return r;
}

}  // namespace

void cache_store::record_run(const run_record& run) {
  if (run.run_id.empty()) throw std::invalid_argument("record_run: the run id is empty");
  auto& s = *state_;
  s.guarded("record_run", [&] {
    s.require_writable("record a run");
    auto guard = s.lock();
    sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
    s.db.prepare(insert_run_sql)
        .bind(1, std::string_view(run.run_id))
        .bind(2, std::string_view(run.pipeline))
        .bind(3, to_ns(run.started))
        .bind(4, static_cast<std::int64_t>(run.wall.count()))
        .bind(5, static_cast<std::int64_t>(run.steps))
        .bind(6, static_cast<std::int64_t>(run.hits))
        .bind(7, static_cast<std::int64_t>(run.computed))
        .bind(8, static_cast<std::int64_t>(run.reported_misses))
        .bind(9, static_cast<std::int64_t>(run.failed))
        .run();
    const auto kept = std::min<std::uint64_t>(s.options.runs_kept, std::numeric_limits<std::int64_t>::max());
    const std::int64_t rows = [&] {
      auto count = s.db.prepare(count_runs_sql);
      return count.step() ? count.integer(0) : 0;
    }();
    // Pruned in batches: the prune sorts every row (about 100 us for
    // 1,000), so it runs once the bound is passed by a 64th, not every run.
    const auto slack = static_cast<std::int64_t>(kept / 64);
    if (rows > static_cast<std::int64_t>(kept) + slack)
      s.db.prepare(prune_runs_sql).bind(1, rows - static_cast<std::int64_t>(kept)).run();
    tx.commit();
  });
}

std::optional<run_record> cache_store::last_run(std::string_view pipeline) {
  auto& s = *state_;
  return s.guarded("last_run", [&]() -> std::optional<run_record> {
    auto guard = s.lock();
    auto q = s.db.prepare(pipeline.empty() ? select_last_run_sql : select_last_run_of_sql);
    if (!pipeline.empty()) q.bind(1, pipeline);
    while (q.step()) {
      if (auto r = read_run(q)) return r;
    }
    return std::nullopt;
  });
}

void cache_store::record_steps(std::span<const step_record> steps) {
  if (steps.empty()) return;
  auto& s = *state_;
  s.guarded("record_steps", [&] {
    s.require_writable("record steps");
    auto guard = s.lock();
    sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
    for (const auto& r : steps) {
      s.db.prepare(upsert_step_sql)
          .bind(1, std::string_view(r.pipeline))
          .bind(2, std::string_view(r.step))
          .bind(3, r.key)
          .bind(4, std::string_view(r.components))
          .bind(5, std::string_view(r.run_id))
          .bind(6, to_ns(r.when))
          .run();
    }
    tx.commit();
  });
}

std::vector<step_record> cache_store::last_steps(std::string_view pipeline) {
  auto& s = *state_;
  return s.guarded("last_steps", [&] {
    auto guard = s.lock();
    std::vector<step_record> out;
    auto q = s.db.prepare(select_steps_sql);
    q.bind(1, pipeline);
    while (q.step()) {
      if (auto r = read_step(q, pipeline)) out.push_back(std::move(*r));
    }
    return out;
  });
}

}  // namespace penstock::detail::r1
