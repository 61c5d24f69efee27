// known_files: the stat cache of file digests in the index (table file_stats,
// schema 5): a file's digest, trusted while its stat fields stay as they were when it was hashed.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

#include "cache_store_state.hpp"

namespace penstock::detail::r1 {

namespace {

constexpr const char* select_file_sql =
    "SELECT device, inode, size, mtime_ns, ctime_ns, digest, hashed_at_ns FROM file_stats WHERE path = ?1";
// The columns of select_file_sql, then the path: the rows from ?1 on (known_files).
constexpr const char* select_files_from_sql =
    "SELECT device, inode, size, mtime_ns, ctime_ns, digest, hashed_at_ns, path FROM file_stats WHERE path >= ?1 "
    "ORDER BY path";
constexpr const char* upsert_file_sql =
    "INSERT OR REPLACE INTO file_stats(path, device, inode, size, mtime_ns, ctime_ns, digest, hashed_at_ns) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr const char* select_paths_sql = "SELECT path FROM file_stats";
constexpr const char* delete_file_sql = "DELETE FROM file_stats WHERE path = ?1";

// The path's bytes, bound as a blob: any bytes (a file name need not be UTF-8), compared exactly.
std::span<const std::byte> path_bytes(const std::string& path) noexcept {
  return std::as_bytes(std::span(path.data(), path.size()));
}

void check_absolute(std::string_view path, const char* operation) {
  if (path.empty() || path.front() != '/') {
    throw std::invalid_argument(fmt::format("{}: the path '{}' is not absolute", operation, path));
  }
}

// A row of select_file_sql (or select_files_from_sql), its path left
// empty; nullopt if it cannot be read (as if there were none: rewritten later).
std::optional<cache_store::stored_file> stored_of(const sqlite::query& q) {
  for (const int column : {0, 1, 2, 3, 4, 6}) {
    if (q.type(column) != SQLITE_INTEGER) return std::nullopt;
  }
  const auto content = q.digest_at(5);
  if (!content) return std::nullopt;
  return cache_store::stored_file{.row = {.path = {},
                                          .device = static_cast<std::uint64_t>(q.integer(0)),
                                          .inode = static_cast<std::uint64_t>(q.integer(1)),
                                          .size = static_cast<std::uint64_t>(q.integer(2)),
                                          .mtime_ns = q.integer(3),
                                          .ctime_ns = q.integer(4)},
                                  .known = {*content, q.integer(6)}};
}

// The stored digest in a row of select_file_sql (or select_files_from_sql)
// if its stat fields are `row`'s.
std::optional<known_file_digest> known_of(const sqlite::query& q, const file_stat_row& row) {
  const auto stored = stored_of(q);
  if (!stored || !same_stat_fields(stored->row, row)) return std::nullopt;
  return stored->known;
}

// The stored digest of row.path if the stored stat fields are row's. Called under the lock.
std::optional<known_file_digest> find_known(sqlite::database& db, const file_stat_row& row) {
  auto q = db.prepare(select_file_sql);
  q.bind(1, path_bytes(row.path));
  if (!q.step()) return std::nullopt;
  return known_of(q, row);
}

}  // namespace

std::optional<known_file_digest> cache_store::known_file(const file_stat_row& row) {
  check_absolute(row.path, "known_file");
  auto& s = *state_;
  return s.guarded("known_file", [&] {
    auto guard = s.lock();
    return find_known(s.db, row);
  });
}

std::vector<std::optional<known_file_digest>> cache_store::known_files(std::span<const file_stat_row> rows) {
  std::vector<const file_stat_row*> each(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) each[i] = &rows[i];
  return known_files(each);
}

std::vector<std::optional<known_file_digest>> cache_store::known_files(std::span<const file_stat_row* const> rows) {
  std::vector<const std::string*> paths(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) paths[i] = &rows[i]->path;
  const auto stored = stored_files(paths);
  std::vector<std::optional<known_file_digest>> out(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (stored[i] && same_stat_fields(stored[i]->row, *rows[i])) out[i] = stored[i]->known;
  return out;
}

std::vector<std::optional<cache_store::stored_file>> cache_store::stored_files(
    std::span<const std::string* const> paths) {
  for (const auto* path : paths) check_absolute(*path, "known_files");
  auto& s = *state_;
  return s.guarded("known_files", [&] {
    auto guard = s.lock();
    std::vector<std::optional<stored_file>> out(paths.size());
    // The paths in the index's order, read in one pass (database::seek_each).
    std::vector<std::size_t> order(paths.size());
    for (std::size_t i = 0; i < paths.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return sqlite::blob_less(path_bytes(*paths[a]), path_bytes(*paths[b]));
    });
    std::vector<std::span<const std::byte>> sorted(paths.size());
    for (std::size_t k = 0; k < paths.size(); ++k) sorted[k] = path_bytes(*paths[order[k]]);
    sqlite::transaction tx(s.db, sqlite::transaction_kind::read);  // one snapshot
    s.db.seek_each(select_files_from_sql, 7, sorted,
                   [&](std::size_t k, const sqlite::query& q) { out[order[k]] = stored_of(q); });
    tx.commit();
    return out;
  });
}

void cache_store::remember_files(std::span<const std::pair<file_stat_row, known_file_digest>> rows) {
  for (const auto& [row, known] : rows) check_absolute(row.path, "remember_files");
  auto& s = *state_;
  if (rows.empty() || s.read_only) return;  // a read-only store remembers nothing: the files are hashed again
  s.guarded("remember_files", [&] {
    auto guard = s.lock();
    sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
    for (const auto& [row, known] : rows) {
      s.db.prepare(upsert_file_sql)
          .bind(1, path_bytes(row.path))
          .bind(2, static_cast<std::int64_t>(row.device))
          .bind(3, static_cast<std::int64_t>(row.inode))
          .bind(4, static_cast<std::int64_t>(row.size))
          .bind(5, row.mtime_ns)
          .bind(6, row.ctime_ns)
          .bind(7, known.content)
          .bind(8, known.hashed_at_ns)
          .run();
    }
    tx.commit();
  });
}

std::uint64_t cache_store::state::forget_missing_files() {
  // The paths, then (no lock held: stat() of many files can take a while)
  // which are gone, then one write transaction for those.
  std::vector<std::string> paths;
  {
    auto guard = lock();
    auto q = db.prepare(select_paths_sql);
    while (q.step()) {
      const auto bytes = q.bytes_at(0);
      paths.emplace_back(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
  }
  std::vector<std::string> gone;
  for (std::string& path : paths) {
    struct stat info {};
    // Only a path that certainly does not exist goes (EACCES, EIO... keep the row).
    const bool missing = path.find('\0') != std::string::npos ||
                         (::stat(path.c_str(), &info) != 0 && (errno == ENOENT || errno == ENOTDIR));
    if (missing) gone.push_back(std::move(path));
  }
  if (gone.empty()) return 0;
  auto guard = lock();
  sqlite::transaction tx(db, sqlite::transaction_kind::write);
  std::uint64_t removed = 0;
  for (const std::string& path : gone) {
    db.prepare(delete_file_sql).bind(1, path_bytes(path)).run();
    removed += static_cast<std::uint64_t>(db.changes());
  }
  tx.commit();
  return removed;
}

}  // namespace penstock::detail::r1
