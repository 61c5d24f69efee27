// cache_store_state: what the parts of the cache store share (the directory, its index connection and blob
// store, this process's identity, the clock), and the helpers they have in common. Private to cache_*.cpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "blob_store.hpp"
#include "cache_store.hpp"
#include "process_identity.hpp"
#include "sqlite_db.hpp"

namespace penstock::detail::r1 {

using sys_clock = std::chrono::system_clock;

inline std::int64_t to_ns(sys_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline sys_clock::time_point from_ns(std::int64_t ns) noexcept {
  return sys_clock::time_point(std::chrono::duration_cast<sys_clock::duration>(std::chrono::nanoseconds(ns)));
}
// now + ttl without overflow.
inline std::int64_t expiry(std::int64_t now, std::chrono::nanoseconds ttl) noexcept {
  const std::int64_t t = std::max<std::int64_t>(ttl.count(), 0);
  return now > std::numeric_limits<std::int64_t>::max() - t ? std::numeric_limits<std::int64_t>::max() : now + t;
}

struct digest_hash {
  std::size_t operator()(const digest& d) const noexcept {
    return static_cast<std::size_t>(d.low ^ (d.high * 0x9e3779b97f4a7c15ULL));
  }
};
using digest_set = std::unordered_set<digest, digest_hash>;

// The owner of a lease or in-use mark, as its row holds it.
struct owner_row {
  sqlite::digest_bytes owner{};
  std::int64_t id = 0;
  std::int64_t pid = 0;
  std::string host;
  std::int64_t expires = 0;
  std::optional<std::int64_t> started;  // the owner process's start time (schema 4; NULL before)
};
// Reads owner, id, pid, host, expires, started from columns first.. first+5.
[[nodiscard]] std::optional<owner_row> read_owner(const sqlite::query& q, int first);

// An exception of a caller's function (get's destination), on its way
// through guarded() unchanged.
struct callers_exception {
  std::exception_ptr error;
};
// Runs the caller's `f`; its exception leaves guarded() as it was thrown.
template <class F>
decltype(auto) call_back(F&& f) {
  try {
    return f();
  } catch (...) {
    throw callers_exception{std::current_exception()};
  }
}

// What the exception being handled says (call it in a catch block).
inline std::string current_exception_text() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

// Runs `body`, the work of public operation `operation` on the cache in
// `directory`: a failure that is not a cache_error (std::bad_alloc,
// std::system_error, std::filesystem::filesystem_error, ...) leaves it as
// one, naming the directory and the operation, with the original nested
// (std::rethrow_if_nested); std::invalid_argument (a caller's mistake, as
// documented) and a caller's own exception (call_back) leave it unchanged.
template <class F>
decltype(auto) guard_failures(const std::filesystem::path& directory, const char* operation, F&& body) {
  try {
    return body();
  } catch (const cache_error&) {
    throw;
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const callers_exception& e) {
    std::rethrow_exception(e.error);
  } catch (...) {
    std::throw_with_nested(
        cache_error(fmt::format("cache {}: {}: {}", directory.string(), operation, current_exception_text())));
  }
}

struct cache_store::state {
  state(const std::filesystem::path& dir, cache_store_options opts);
  state(const state&) = delete;
  state& operator=(const state&) = delete;

  std::filesystem::path directory;
  std::filesystem::path index_file;
  cache_store_options options;
  process_identity self = process_identity::current();  // who we are, in leases, marks and temporaries
  blob_store blobs{directory / "blobs", self};
  // Opened read-only (see cache_store.hpp), and why: for the message of a write refused.
  bool read_only = false;
  std::string read_only_why;

  mutable std::mutex sink_mutex;  // guards warning_sink
  std::function<void(std::string)> warning_sink;
  void warn(std::string message) const noexcept;  // see cache_store::warn

  std::mutex mutex;  // guards everything below
  sqlite::database db{index_file};
  std::int64_t next_id = 1;
  std::int64_t last_stamp = 0;
  std::minstd_rand jitter{random_u32()};

  // cache_index.cpp: opens the index read-write and migrates it, removing
  // dead writers' temporaries; or read-only (see cache_store.hpp).
  void open();
  void open_read_only(std::string why);

  [[nodiscard]] std::unique_lock<std::mutex> lock();
  [[nodiscard]] std::int64_t now() const { return to_ns(options.clock ? options.clock() : sys_clock::now()); }
  // A last_used stamp before this is stale: get() and touch() rewrite it.
  [[nodiscard]] std::int64_t stale_before() const {
    return now() - std::chrono::nanoseconds(options.touch_interval).count();
  }
  [[nodiscard]] bool fresh(sys_clock::time_point last_used) const { return to_ns(last_used) >= stale_before(); }
  // Strictly increasing within this store, so last-use order is exact.
  std::int64_t stamp() {
    last_stamp = std::max(now(), last_stamp + 1);
    return last_stamp;
  }

  // A cache_error saying that `operation` needs a cache directory that can be written, if this one cannot.
  void require_writable(std::string_view operation) const {
    if (read_only) {
      throw cache_error(fmt::format("cannot {}: the cache directory {} is open read-only ({})", operation,
                                    directory.string(), read_only_why));
    }
  }

  // Runs the body of public operation `operation`: see guard_failures.
  template <class F>
  decltype(auto) guarded(const char* operation, F&& body) const {
    return guard_failures(directory, operation, std::forward<F>(body));
  }

  // ---- entries (cache_store.cpp, cache_put.cpp) ----
  // Writes the index row (with its inline value, if `inline_value`), drops
  // the writer's in-use mark (mark_id != 0) and releases its lease
  // (lease_id != 0), in one transaction. Called under the lock.
  void commit_row(const digest& key, const digest& content, std::uint64_t size, const put_info& info, bool inline_value,
                  std::span<const std::byte> bytes, std::int64_t mark_id, std::int64_t lease_id);
  put_result publish_inline(const digest& key, const digest& content, std::span<const std::byte> bytes,
                            const put_info& info, std::int64_t lease_id);
  put_result publish(const digest& key, const digest& content, std::uint64_t size, const put_info& info,
                     std::filesystem::path temp, std::span<const std::byte> bytes, std::int64_t lease_id,
                     bool temp_unsynced = false);
  // Removes an unreadable index row (not in a read-only store) and says so.
  cache_result unreadable_row(const digest& key, std::string_view why);
  enum class entry_row : std::uint8_t { absent, readable, unreadable };
  [[nodiscard]] entry_row entry_row_of(const digest& key);
  // Removes the key's row; false if there was none. Called under the lock.
  bool delete_entry(const digest& key);

  // ---- known files (known_files.cpp) ----
  // Removes the file_stats rows whose path no longer exists (gc); returns how many.
  std::uint64_t forget_missing_files();

  // ---- leases and in-use marks (cache_leases.cpp) ----
  // Is the owner of a lease or mark still there?
  [[nodiscard]] bool live(const owner_row& o, std::int64_t at) const;
  [[nodiscard]] std::string describe(const owner_row& o, std::int64_t at) const;
  // Writes a new in-use mark on `content`; returns its id. Called under the lock.
  std::int64_t insert_mark(const digest& content);
  // The same, taking the lock (autocommit: one statement is one transaction).
  std::int64_t mark(const digest& content);
  void unmark(const digest& content, std::int64_t id);
  // Removes a mark when an operation is cut short by an exception.
  void unmark_after_failure(const digest& content, std::int64_t id) noexcept;
  // Whether a live mark (of any store) protects `content`. Called under the lock.
  [[nodiscard]] bool marked(const digest& content, std::int64_t at);
};

}  // namespace penstock::detail::r1
