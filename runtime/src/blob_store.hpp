// blob_store: the blobs/ directory of a cache: one read-only file per content
// digest, temporaries renamed into place, reading with verification, and the removal of dead writers' temporaries.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <penstock/digest.hpp>

#include "cache_store.hpp"
#include "process_identity.hpp"

namespace penstock::detail::r1 {

// What reading a blob found: hit, or a reported miss with its message.
struct blob_read {
  cache_status status = cache_status::hit;
  std::string message;
  bool opened = false;  // the file was opened: `seen` is its fstat
  struct stat seen {};
};

// Layout: blobs/<first 2 hex digits>/<32 hex digits>, and temporaries
// blobs/.tmp-<host tag>-<pid>-<start time>-<random> (older
// stores wrote .tmp-<host tag>-<pid>-<random>). Every failure is a cache_error naming the file.
class blob_store {
 public:
  blob_store(std::filesystem::path directory, const process_identity& self)
      : directory_(std::move(directory)), self_(self) {}

  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return directory_; }
  [[nodiscard]] std::filesystem::path path_of(const digest& content) const;
  // A new name for a temporary of this process.
  [[nodiscard]] std::filesystem::path temporary_path() const;

  // Writes the bytes to a fresh temporary file and fsyncs it. With `hash`:
  // hashes each io_chunk piece just before writing it (while it is in the
  // CPU cache), and leaves the fsync to place(unsynced = true), which does
  // it only if the file is used.
  [[nodiscard]] std::filesystem::path write_temporary(std::span<const std::byte> bytes, hasher* hash = nullptr) const;
  // Whether a regular file of `size` bytes is stored under `content`.
  [[nodiscard]] bool holds(const digest& content, std::uint64_t size) const;
  // Renames the complete temporary `temp` into place as blob `content`
  // (fsync'ing it first if `unsynced`), replacing a stale file of the wrong
  // size atomically, then fsyncs the directory.
  void place(const std::filesystem::path& temp, const digest& content, bool unsynced) const;

  // Reads blob `content` (`size` bytes, the value of cache key `key`) into
  // `parts`, in order, hashing every byte, and compares with the digest.
  // A missing, short, long, unreadable (EIO) or corrupt blob is a reported
  // miss; any other failure (EACCES, say) a cache_error.
  [[nodiscard]] blob_read read(const digest& key, const digest& content, std::uint64_t size,
                               std::span<const std::span<std::byte>> parts) const;
  // Removes a bad blob if the file at its path is still the one that was
  // read (`seen`; a writer may have just renamed a good copy over it).
  // Failing to remove it is no error: a writer renames a good copy over it.
  void remove_if_unchanged(const digest& content, const struct stat& seen) const;

  // The digests of the blob files in the directory (names that are not a
  // digest in its right subdirectory are not ours, and left alone).
  [[nodiscard]] std::vector<digest> stored() const;
  // Removes the temporaries whose writer is gone: named by a process of
  // this host that is dead, or whose pid now names a process started at
  // another time. With `gc_rules` (gc), also old-format names of a dead pid of
  // this host, and any temporary nobody touched for 24 hours, and a failure
  // to remove one is a cache_error; without (a store opening), it is left for gc.
  // Returns how many went.
  std::uint64_t remove_dead_temporaries(bool gc_rules) const;

 private:
  [[nodiscard]] bool writer_gone(std::string_view name) const;

  std::filesystem::path directory_;
  const process_identity& self_;
};

}  // namespace penstock::detail::r1
