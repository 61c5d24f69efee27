// stat_cache: what a file's stat said when it was last hashed (device, inode,
// size, mtime, ctime) and its content digest, so that an unchanged input file
// is not read again. One SQLite file, stat.sqlite, in the cache directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <penstock/digest.hpp>

#include "sqlite_db.hpp"

namespace penstock::detail::r1 {

struct file_stat_row {
  std::string path;  // absolute, as bytes (need not be UTF-8)
  std::uint64_t device = 0, inode = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
};
struct known_file_digest {
  digest content;
  std::int64_t hashed_at_ns = 0;  // when it was hashed (wall clock)
};

class stat_cache {
 public:
  // Opens (or makes) <directory>/stat.sqlite; cache_error if it cannot.
  explicit stat_cache(const std::filesystem::path& directory);
  // For each row, the digest recorded for its path if every stat field is
  // the same as then; one read transaction.
  [[nodiscard]] std::vector<std::optional<known_file_digest>> known_files(std::span<const file_stat_row> rows);
  // Records rows (one write transaction); nothing in a read-only cache.
  void remember_files(std::span<const std::pair<file_stat_row, known_file_digest>> rows);

 private:
  std::mutex mutex_;
  sqlite::database db_;
  bool read_only_ = false;
};

}  // namespace penstock::detail::r1
