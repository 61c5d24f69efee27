// blob_store: blob files named by digest under blobs/, their temporaries, and
// reading them back verified; see blob_store.hpp and the integrity rules in cache_store.hpp.
#include "blob_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "blob_streams.hpp"
#include "posix_file.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

// A temporary file nobody touched for this long is abandoned, whoever wrote it.
constexpr auto abandoned_after = std::chrono::hours(24);

std::optional<digest> digest_from_hex(std::string_view hex) noexcept {
  if (hex.size() != 32) return std::nullopt;
  digest d;
  for (std::size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    std::uint64_t v = 0;
    if (c >= '0' && c <= '9') {
      v = static_cast<std::uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<std::uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    std::uint64_t& word = i < 16 ? d.high : d.low;
    word = (word << 4) | v;
  }
  return d;
}

// A decimal number, the whole of `text`.
std::optional<std::int64_t> number(std::string_view text) noexcept {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// The dash-separated fields of a temporary's name after ".tmp-".
std::vector<std::string_view> fields_of(std::string_view name) {
  std::vector<std::string_view> fields;
  name.remove_prefix(5);
  for (std::size_t dash; (dash = name.find('-')) != std::string_view::npos; name.remove_prefix(dash + 1)) {
    fields.push_back(name.substr(0, dash));
  }
  fields.push_back(name);
  return fields;
}

}  // namespace

fs::path blob_store::path_of(const digest& content) const {
  const std::string hex = content.hex();
  return directory_ / hex.substr(0, 2) / hex;
}

fs::path blob_store::temporary_path() const {
  const owner_token r = random_token();
  // The start time tells this writer from a later process given its pid ('n': unknown).
  const std::string started = self_.started ? std::to_string(*self_.started) : std::string("n");
  return directory_ / fmt::format(".tmp-{}-{}-{}-{:02x}", self_.host_tag, self_.pid, started,
                                  fmt::join(r.begin(), r.begin() + 8, ""));
}

fs::path blob_store::write_temporary(std::span<const std::byte> bytes, hasher* hash) const {
  fs::path temp = temporary_path();
  unique_fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd) throw cache_error(fmt::format("cannot create {}: {}", temp.string(), errno_text(errno)));
  try {
    if (hash == nullptr) {
      write_all(fd.get(), bytes.data(), bytes.size(), temp);
      sync_file(fd.get(), temp);
    } else {
      for (std::size_t at = 0; at < bytes.size(); at += io_chunk) {
        const std::size_t piece = std::min(io_chunk, bytes.size() - at);
        hash->update(bytes.data() + at, piece);
        write_all(fd.get(), bytes.data() + at, piece, temp);
      }
    }
    fd.close(temp);
  } catch (...) {
    ::unlink(temp.c_str());  // ours alone: nobody else knows its name
    throw;
  }
  return temp;
}

bool blob_store::holds(const digest& content, std::uint64_t size) const {
  struct stat existing {};
  return ::stat(path_of(content).c_str(), &existing) == 0 && S_ISREG(existing.st_mode) &&
         static_cast<std::uint64_t>(existing.st_size) == size;
}

void blob_store::place(const fs::path& temp, const digest& content, bool unsynced) const {
  const fs::path target = path_of(content);
  ensure_directory(target.parent_path());
  if (unsynced) {
    const unique_fd written(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
    if (!written) throw cache_error(fmt::format("cannot open {}: {}", temp.string(), errno_text(errno)));
    sync_file(written.get(), temp);
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    throw cache_error(fmt::format("cannot rename {} to {}: {}", temp.string(), target.string(), errno_text(errno)));
  }
  sync_directory(target.parent_path());
}

blob_read blob_store::read(const digest& key, const digest& content, std::uint64_t size,
                           std::span<const std::span<std::byte>> parts) const {
  const fs::path path = path_of(content);
  blob_read r;
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      r.status = cache_status::blob_missing;
      r.message =
          fmt::format("cache entry {}: blob {} (digest {}) is missing", key.hex(), path.string(), content.hex());
    } else if (error == EIO) {
      r.status = cache_status::blob_corrupt;
      r.message = fmt::format("cache entry {}: blob {} (digest {}) cannot be opened: {}", key.hex(), path.string(),
                              content.hex(), errno_text(error));
    } else {
      throw cache_error(
          fmt::format("cannot open blob {} of cache entry {}: {}", path.string(), key.hex(), errno_text(error)));
    }
    return r;
  }
  if (::fstat(fd.get(), &r.seen) != 0) {
    throw cache_error(fmt::format("cannot stat blob {}: {}", path.string(), errno_text(errno)));
  }
  r.opened = true;
  if (!S_ISREG(r.seen.st_mode)) {
    r.status = cache_status::blob_corrupt;
    r.message = fmt::format("cache entry {}: blob {} (digest {}) is not a regular file", key.hex(), path.string(),
                            content.hex());
    return r;
  }
  if (static_cast<std::uint64_t>(r.seen.st_size) != size) {
    r.status = cache_status::blob_truncated;
    r.message = fmt::format("cache entry {}: blob {} (digest {}) has {} bytes, the index says {}", key.hex(),
                            path.string(), content.hex(), static_cast<std::uint64_t>(r.seen.st_size), size);
    return r;
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  hasher hash;
  std::size_t done = 0;  // over all parts
  int read_error = 0;
  bool ended = false;  // the file ended early
  realigning_buffer realign;
  for (const auto& into : parts) {
    trailing_hasher part_hash(into.data(), into.size() >= large_value_min, hash);
    // A destination whose address is not aligned like the file offset
    // (mod 64) is filled through a buffer that is: the kernel's copy
    // out of the page cache is 2-4x slower between differently
    // aligned addresses than read() then memcpy() (bench/RESULTS.md).
    const bool through_buffer =
        into.size() >= realign_min && (reinterpret_cast<std::uintptr_t>(into.data()) - done) % 64 != 0;
    std::size_t filled = 0;
    while (filled < into.size()) {
      const std::size_t want = std::min(into.size() - filled, io_chunk);
      std::byte* const target = through_buffer ? realign.at(done + filled) : into.data() + filled;
      const ssize_t n = ::read(fd.get(), target, want);
      if (n < 0) {
        if (errno == EINTR) continue;
        read_error = errno;
        break;
      }
      if (n == 0) {
        ended = true;
        break;
      }
      if (through_buffer) std::memcpy(into.data() + filled, target, static_cast<std::size_t>(n));
      filled += static_cast<std::size_t>(n);
      part_hash.available(filled);
    }
    done += filled;
    hash = part_hash.release();
    if (read_error != 0 || ended) break;
  }
  if (read_error != 0) {
    if (read_error != EIO) {
      throw cache_error(
          fmt::format("cannot read blob {} of cache entry {}: {}", path.string(), key.hex(), errno_text(read_error)));
    }
    r.status = cache_status::blob_corrupt;
    r.message = fmt::format("cache entry {}: blob {} (digest {}) cannot be read: {}", key.hex(), path.string(),
                            content.hex(), errno_text(read_error));
  } else if (done != size) {
    r.status = cache_status::blob_truncated;
    r.message = fmt::format("cache entry {}: blob {} (digest {}) ended after {} of {} bytes", key.hex(), path.string(),
                            content.hex(), done, size);
  } else if (const digest actual = hash.finish(); actual != content) {
    r.status = cache_status::blob_corrupt;
    r.message = fmt::format("cache entry {}: blob {} does not match its digest {} (its bytes hash to {})", key.hex(),
                            path.string(), content.hex(), actual.hex());
  }
  return r;
}

void blob_store::remove_if_unchanged(const digest& content, const struct stat& seen) const {
  const fs::path path = path_of(content);
  struct stat now_there {};
  if (::stat(path.c_str(), &now_there) != 0) return;
  if (now_there.st_ino != seen.st_ino || now_there.st_dev != seen.st_dev) return;
  if (S_ISDIR(now_there.st_mode)) {
    ::rmdir(path.c_str());  // see above: no error
  } else {
    ::unlink(path.c_str());
  }
}

std::vector<digest> blob_store::stored() const {
  std::vector<digest> out;
  for (const std::string& top : list_directory(directory_)) {
    if (top.size() != 2 || top.starts_with('.')) continue;
    struct stat info {};
    if (::stat((directory_ / top).c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) continue;
    for (const std::string& name : list_directory(directory_ / top)) {
      const auto d = digest_from_hex(name);
      if (d && name.compare(0, 2, top) == 0) out.push_back(*d);  // else not ours: leave it
    }
  }
  return out;
}

bool blob_store::writer_gone(std::string_view name) const {
  const std::vector<std::string_view> fields = fields_of(name);
  if (fields.size() != 4 || fields[0] != self_.host_tag) return false;  // another host's, or an old-format name
  const auto pid = number(fields[1]);
  const bool unknown_start = fields[2] == "n";
  const std::optional<std::int64_t> started = unknown_start ? std::nullopt : number(fields[2]);
  if (!pid || (!started && !unknown_start)) return false;  // not a name this store writes
  return self_.other_gone(*pid, started);
}

std::uint64_t blob_store::remove_dead_temporaries(bool gc_rules) const {
  std::uint64_t removed = 0;
  const auto abandoned = std::chrono::system_clock::now() - abandoned_after;
  for (const std::string& name : list_directory(directory_)) {
    if (!name.starts_with(".tmp-")) continue;
    const fs::path path = directory_ / name;
    bool dead = writer_gone(name);
    if (!dead && gc_rules) {
      struct stat info {};
      const bool old =
          ::stat(path.c_str(), &info) == 0 && std::chrono::system_clock::from_time_t(info.st_mtim.tv_sec) < abandoned;
      // .tmp-<host tag>-<pid>-<random>, written before the start time was part of the name.
      const std::vector<std::string_view> fields = fields_of(name);
      const auto pid = fields.size() == 3 && fields[0] == self_.host_tag ? number(fields[1]) : std::nullopt;
      dead = old || (pid && *pid != self_.pid && !process_alive(*pid, std::nullopt));
    }
    if (!dead) continue;
    if (gc_rules) {
      if (remove_file(path)) ++removed;
    } else if (::unlink(path.c_str()) == 0) {
      ++removed;  // when a store opens; one that cannot be removed waits for gc, which says why
    }
  }
  return removed;
}

}  // namespace penstock::detail::r1
