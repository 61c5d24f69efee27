// cache_index: opening a cache's index (read-write, in WAL mode; dead
// writers' temporaries go then) and its schema's numbered migrations.
#include "cache_index.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>
#include <sqlite3.h>

#include "cache_store_state.hpp"
#include "posix_file.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

// Digests and keys are 16-byte blobs; times are nanoseconds since the Unix
// epoch. in_use holds the marks of readers and writers (see cache_store.hpp);
// leases the right to compute a key.
constexpr const char* schema_1_sql = R"sql(
CREATE TABLE IF NOT EXISTS entries(
  key BLOB PRIMARY KEY,
  digest BLOB NOT NULL,
  size INTEGER NOT NULL,
  type BLOB NOT NULL,
  run_id TEXT NOT NULL,
  created INTEGER NOT NULL,
  last_used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_digest ON entries(digest);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries(last_used);
CREATE TABLE IF NOT EXISTS leases(
  key BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS in_use(
  digest BLOB NOT NULL,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL,
  PRIMARY KEY(digest, owner, id)
) WITHOUT ROWID;
)sql";

// Run and step records (counts are stored as 64-bit integers, bit for bit).
constexpr const char* schema_2_sql = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  seq INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL UNIQUE,
  pipeline TEXT NOT NULL,
  started INTEGER NOT NULL,
  wall INTEGER NOT NULL,
  steps INTEGER NOT NULL,
  hits INTEGER NOT NULL,
  computed INTEGER NOT NULL,
  reported_misses INTEGER NOT NULL,
  failed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs(pipeline, started);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs(started);
CREATE TABLE IF NOT EXISTS steps(
  pipeline TEXT NOT NULL,
  step TEXT NOT NULL,
  key BLOB NOT NULL,
  components TEXT NOT NULL,
  run_id TEXT NOT NULL,
  recorded INTEGER NOT NULL,
  PRIMARY KEY(pipeline, step)
) WITHOUT ROWID;
)sql";

// Columns added to existing tables: a table created by a migration that ran
// in the same transaction lacks them too, and an index whose user_version is
// behind its tables (none is known) is caught up without an error.
void add_column(sqlite::database& db, const char* table, const char* column, const char* sql) {
  if (!db.has_column(table, column)) db.exec(sql);
}
void add_inline_values(sqlite::database& db) {
  add_column(db, "entries", "inline_value", "ALTER TABLE entries ADD COLUMN inline_value BLOB");
}
void add_owner_start_times(sqlite::database& db) {
  add_column(db, "leases", "started", "ALTER TABLE leases ADD COLUMN started INTEGER");
  add_column(db, "in_use", "started", "ALTER TABLE in_use ADD COLUMN started INTEGER");
}

const std::array<sqlite::migration, 4> migrations = {{
    {1, schema_1_sql, nullptr},
    {2, schema_2_sql, nullptr},
    {3, nullptr, add_inline_values},
    {4, nullptr, add_owner_start_times},
}};

}  // namespace

std::span<const sqlite::migration> index_migrations() { return migrations; }

void cache_store::state::open() {
  std::error_code ec;
  fs::create_directories(blobs.directory(), ec);
  if (ec) {
    throw cache_error(fmt::format("cannot create cache directory {}: {}", blobs.directory().string(), ec.message()));
  }
  db.open(index_file.string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout);
  db.use_wal();
  sqlite::migrate(db, migrations);
  // A writer killed while it wrote a blob left its temporary file: it goes
  // now if that writer is certainly dead (this host, and its pid is gone or
  // names a process started later), whoever opens the store next.
  blobs.remove_dead_temporaries(false);
}

}  // namespace penstock::detail::r1
