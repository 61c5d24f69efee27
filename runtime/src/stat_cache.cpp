// stat_cache: a table path -> (stat fields, digest, hashed_at) in its own
// SQLite file, read in one transaction per batch of files.
#include "stat_cache.hpp"

#include <sqlite3.h>

#include <array>

namespace penstock::detail::r1 {

namespace {

constexpr sqlite::migration stat_migrations[] = {
    {.version = 1,
     .sql = "CREATE TABLE IF NOT EXISTS files (path BLOB PRIMARY KEY, device INTEGER, inode INTEGER, size INTEGER, "
            "mtime INTEGER, ctime INTEGER, digest BLOB, hashed_at INTEGER) WITHOUT ROWID"},
};

constexpr const char* select_sql =
    "SELECT device, inode, size, mtime, ctime, digest, hashed_at FROM files WHERE path = ?1";
constexpr const char* upsert_sql =
    "INSERT OR REPLACE INTO files (path, device, inode, size, mtime, ctime, digest, hashed_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace

stat_cache::stat_cache(const std::filesystem::path& directory) : db_(directory / "stat.sqlite") {
  const std::string file = (directory / "stat.sqlite").string();
  try {
    db_.open(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, std::chrono::milliseconds{30'000});
    db_.use_wal();
    sqlite::migrate(db_, stat_migrations);
  } catch (const std::exception&) {
    db_.open(file, SQLITE_OPEN_READONLY, std::chrono::milliseconds{30'000});
    read_only_ = true;
  }
}

std::vector<std::optional<known_file_digest>> stat_cache::known_files(std::span<const file_stat_row> rows) {
  const std::scoped_lock lock(mutex_);
  std::vector<std::optional<known_file_digest>> out(rows.size());
  sqlite::transaction read(db_, sqlite::transaction_kind::read);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const auto& row = rows[k];
    auto q = db_.prepare(select_sql);
    q.bind(1, bytes_of(row.path));
    if (!q.step()) continue;
    if (static_cast<std::uint64_t>(q.integer(0)) != row.device ||
        static_cast<std::uint64_t>(q.integer(1)) != row.inode || static_cast<std::uint64_t>(q.integer(2)) != row.size ||
        q.integer(3) != row.mtime_ns || q.integer(4) != row.ctime_ns) {
      continue;
    }
    const auto content = q.digest_at(5);
    if (!content) continue;
    out[k] = known_file_digest{.content = *content, .hashed_at_ns = q.integer(6)};
  }
  read.commit();
  return out;
}

void stat_cache::remember_files(std::span<const std::pair<file_stat_row, known_file_digest>> rows) {
  const std::scoped_lock lock(mutex_);
  if (read_only_) return;
  sqlite::transaction write(db_, sqlite::transaction_kind::write);
  for (const auto& [row, known] : rows) {
    db_.prepare(upsert_sql)
        .bind(1, bytes_of(row.path))
        .bind(2, static_cast<std::int64_t>(row.device))
        .bind(3, static_cast<std::int64_t>(row.inode))
        .bind(4, static_cast<std::int64_t>(row.size))
        .bind(5, row.mtime_ns)
        .bind(6, row.ctime_ns)
        .bind(7, known.content)
        .bind(8, known.hashed_at_ns)
        .run();
  }
  write.commit();
}

}  // namespace penstock::detail::r1
