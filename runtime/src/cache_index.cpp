// cache_index: opening a cache's index (read-write in WAL mode, or read-only
// when the directory cannot be written) and its schema's numbered migrations.
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

// The digest of a file's bytes, known while its stat fields stay as they were
// (known_file). The path is the file's absolute path as bytes (a blob: it need
// not be UTF-8); device, inode and size are 64-bit unsigned values stored bit
// for bit. `{}` is the schema: main, or temp for an older read-only index.
constexpr const char* file_stats_sql = R"sql(
CREATE TABLE IF NOT EXISTS {}.file_stats(
  path BLOB PRIMARY KEY,
  device INTEGER NOT NULL,
  inode INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  digest BLOB NOT NULL,
  hashed_at_ns INTEGER NOT NULL
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

void add_file_stats(sqlite::database& db) { db.exec(fmt::format(fmt::runtime(file_stats_sql), "main").c_str()); }

const std::array<sqlite::migration, 5> migrations = {{
    {1, schema_1_sql, nullptr},
    {2, schema_2_sql, nullptr},
    {3, nullptr, add_inline_values},
    {4, nullptr, add_owner_start_times},
    {5, nullptr, add_file_stats},
}};

bool permission_error(int error) noexcept { return error == EACCES || error == EPERM || error == EROFS; }

// Why `path` cannot be written (empty: it can, or it does not exist).
std::string unwritable(const fs::path& path) {
  if (::access(path.c_str(), W_OK) == 0 || !permission_error(errno)) return {};
  return fmt::format("{} cannot be written: {}", path.string(), errno_text(errno));
}

// A file: URI for SQLite (RFC 3986 percent-encoding of all but unreserved characters and '/').
std::string file_uri(const fs::path& path) {
  std::string uri = "file:";
  for (const unsigned char c : path.native()) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
                       c == '-' || c == '.' || c == '_' || c == '~';
    uri += plain ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  return uri;
}

}  // namespace

std::span<const sqlite::migration> index_migrations() { return migrations; }

void cache_store::state::open() {
  if (options.read_only) return open_read_only("cache_store_options::read_only is set");
  std::error_code ec;
  fs::create_directories(blobs.directory(), ec);
  if (ec) {
    std::error_code is_directory;
    if (permission_error(ec.value()) && fs::is_directory(directory, is_directory)) {
      return open_read_only(fmt::format("{} cannot be created: {}", blobs.directory().string(), ec.message()));
    }
    throw cache_error(fmt::format("cannot create cache directory {}: {}", blobs.directory().string(), ec.message()));
  }
  // Every file a writer writes: the directory (the index's -wal and -shm),
  // blobs/, and the index itself if it exists. (Root may write any of them,
  // but not on a read-only file system: EROFS.)
  for (const fs::path& path : {directory, blobs.directory(), index_file}) {
    if (std::string why = unwritable(path); !why.empty()) return open_read_only(std::move(why));
  }
  db.open(index_file.string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout);
  if (db.read_only()) return open_read_only(fmt::format("{} opens read-only", index_file.string()));
  db.use_wal();
  sqlite::migrate(db, migrations);
  // A writer killed while it wrote a blob left its temporary file: it goes
  // now if that writer is certainly dead (this host, and its pid is gone or
  // names a process started later), whoever opens the store next.
  blobs.remove_dead_temporaries(false);
}

void cache_store::state::open_read_only(std::string why) {
  read_only = true;
  read_only_why = std::move(why);
  db.close();
  const auto empty_index = [this] {
    // Nothing stored: an empty index in memory serves every read.
    db.open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout);
    sqlite::migrate(db, migrations);
    db.exec("PRAGMA query_only=1");
  };
  std::error_code ec;
  if (!fs::exists(index_file, ec)) return empty_index();
  const std::string uri = file_uri(index_file);
  db.open(uri + "?mode=ro", SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, options.busy_timeout);
  if (const int rc = db.try_exec("SELECT count(*) FROM sqlite_master"); rc != SQLITE_OK) {
    // A WAL index needs its -shm file, which a directory that cannot be
    // written cannot have made: the last writer to close checkpointed the
    // WAL and deleted both (SQLITE_READONLY_DIRECTORY), or -shm went missing
    // (SQLITE_CANTOPEN). The index file is then read alone, as immutable:
    // all of the index when the WAL was checkpointed, else the index as of
    // its last checkpoint (a WAL that cannot be read is left out: entries
    // missing, never wrong; and every value is verified as it is read).
    if ((rc & 0xff) != SQLITE_READONLY && (rc & 0xff) != SQLITE_CANTOPEN) db.fail(rc, "cannot read");
    db.open(uri + "?mode=ro&immutable=1", SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, options.busy_timeout);
    if (const int again = db.try_exec("SELECT count(*) FROM sqlite_master"); again != SQLITE_OK) {
      db.fail(again, "cannot read");
    }
  }
  const std::int64_t version = db.user_version();
  if (version == 0) return empty_index();  // an immutable read of an index whose tables are all in its WAL
  if (version > index_schema_version) {
    throw cache_error(fmt::format("cache index {} has schema version {}, newer than this penstock's ({})",
                                  index_file.string(), version, index_schema_version));
  }
  if (version < oldest_readable_schema) {
    throw cache_error(
        fmt::format("cache index {} has schema version {}, which this penstock migrates to {} only with write access, "
                    "and the cache directory is read-only ({})",
                    index_file.string(), version, index_schema_version, read_only_why));
  }
  if (version < 5) db.exec(fmt::format(fmt::runtime(file_stats_sql), "temp").c_str());  // known_file finds nothing
  db.exec("PRAGMA query_only=1");  // a write that slipped through would fail, not change the index
}

}  // namespace penstock::detail::r1
