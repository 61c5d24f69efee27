// cache_store: the index of entries (key -> digest, size, type, inline value)
// and the public class's glue: put, lookup, get, touch, erase, stats. The
// rules it keeps are listed in cache_store.hpp; the comments here say how.
#include "cache_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <istream>
#include <ostream>
#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

#include "blob_streams.hpp"
#include "cache_store_state.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

// Column 7 says where the value is ('null': a blob file, 'blob': inline)
// without reading it; get() reads it as column 8.
constexpr const char* select_entry_sql =
    "SELECT key, digest, size, type, run_id, created, last_used, typeof(inline_value) FROM entries WHERE key = ?1";
// What a planner needs (lookup of a batch): no type, run id or creation time.
constexpr const char* select_planned_entry_sql =
    "SELECT digest, size, last_used, typeof(inline_value), key FROM entries WHERE key >= ?1 ORDER BY key";
constexpr const char* select_entry_value_sql =
    "SELECT key, digest, size, type, run_id, created, last_used, typeof(inline_value), inline_value FROM entries "
    "WHERE key = ?1";
// A bad inline value goes with its row only if the row still holds it.
constexpr const char* delete_inline_entry_sql =
    "DELETE FROM entries WHERE key = ?1 AND digest = ?2 AND inline_value = ?3";
constexpr const char* touch_entry_sql = "UPDATE entries SET last_used = ?2 WHERE key = ?1";
constexpr const char* touch_stale_entry_sql =
    "UPDATE entries SET last_used = ?2 WHERE key = ?1 AND (typeof(last_used) != 'integer' OR last_used < ?3)";
constexpr const char* delete_entry_sql = "DELETE FROM entries WHERE key = ?1";
constexpr const char* delete_entries_of_digest_sql = "DELETE FROM entries WHERE digest = ?1 AND inline_value IS NULL";
constexpr const char* count_entries_sql = "SELECT count(*) FROM entries";
constexpr const char* count_blobs_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM (SELECT digest, max(size) AS size FROM entries "
    "WHERE typeof(size) = 'integer' AND inline_value IS NULL GROUP BY digest)";
constexpr const char* count_inline_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE typeof(size) = 'integer' AND inline_value IS NOT NULL";
constexpr const char* count_leases_sql = "SELECT count(*) FROM leases";

// Parses the columns of select_entry_sql (the first 8 of
// select_entry_value_sql); on failure says which column is bad.
std::optional<cache_entry> read_entry(const sqlite::query& q, std::string& why) {
  cache_entry e;
  const auto key = q.digest_at(0);
  const auto content = q.digest_at(1);
  const auto type = q.digest_at(3);
  if (!key) {
    why = "the key is not 16 bytes";
  } else if (!content) {
    why = "the digest column is not a 16-byte blob";
  } else if (q.type(2) != SQLITE_INTEGER || q.integer(2) < 0) {
    why = "the size column is not a non-negative integer";
  } else if (!type) {
    why = "the type column is not a 16-byte blob";
  } else if (q.type(4) != SQLITE_TEXT) {
    why = "the run_id column is not text";
  } else if (q.type(5) != SQLITE_INTEGER || q.type(6) != SQLITE_INTEGER) {
    why = "the created / last_used columns are not integers";
  } else if (const std::string_view where = q.text_view(7); where != "null" && where != "blob") {
    why = "the inline_value column is neither null nor a blob";
  } else {
    e.inline_value = where == "blob";
    e.key = *key;
    e.content = *content;
    e.size = static_cast<std::uint64_t>(q.integer(2));
    e.type = *type;
    e.run_id = q.text(4);
    e.created = from_ns(q.integer(5));
    e.last_used = from_ns(q.integer(6));
    return e;
  }
  return std::nullopt;
}

// Parses the columns of select_planned_entry_sql: the key, digest, size,
// last_used and inline_value of a cache_entry (the rest left empty).
std::optional<cache_entry> read_planned_entry(const sqlite::query& q, const digest& key, std::string& why) {
  const auto content = q.digest_at(0);
  if (!content) {
    why = "the digest column is not a 16-byte blob";
  } else if (q.type(1) != SQLITE_INTEGER || q.integer(1) < 0) {
    why = "the size column is not a non-negative integer";
  } else if (q.type(2) != SQLITE_INTEGER) {
    why = "the last_used column is not an integer";
  } else if (const std::string_view where = q.text_view(3); where != "null" && where != "blob") {
    why = "the inline_value column is neither null nor a blob";
  } else {
    cache_entry e;
    e.key = key;
    e.content = *content;
    e.size = static_cast<std::uint64_t>(q.integer(1));
    e.last_used = from_ns(q.integer(2));
    e.inline_value = where == "blob";
    return e;
  }
  return std::nullopt;
}

std::size_t total_size(std::span<const std::span<std::byte>> parts) noexcept {
  std::size_t total = 0;
  for (const auto& part : parts) total += part.size();
  return total;
}

}  // namespace

std::string_view to_string(cache_status status) noexcept {
  switch (status) {
    case cache_status::hit: return "hit";
    case cache_status::absent: return "absent";
    case cache_status::blob_missing: return "blob missing";
    case cache_status::blob_truncated: return "blob truncated";
    case cache_status::blob_corrupt: return "blob corrupt";
    case cache_status::index_corrupt: return "index row corrupt";
  }
  return "unknown";
}

fs::path default_cache_directory() {
  if (const char* home = std::getenv("PENSTOCK_HOME"); home != nullptr && *home != '\0') {
    return fs::absolute(home);
  }
  return fs::current_path() / ".penstock";
}

// ---- cache_store::state: the entries -------------------------------------------

cache_store::state::state(const fs::path& dir, cache_store_options opts)
    : directory(fs::absolute(dir)), index_file(directory / "index.sqlite"), options(std::move(opts)) {}

std::unique_lock<std::mutex> cache_store::state::lock() {
  if (::getpid() != self.pid) {
    throw cache_error(fmt::format(
        "the cache store on {} was opened in process {} and used in its forked child {}; open a new one there",
        directory.string(), self.pid, ::getpid()));
  }
  return std::unique_lock(mutex);
}

cache_store::state::entry_row cache_store::state::entry_row_of(const digest& key) {
  auto q = db.prepare(select_entry_sql);
  q.bind(1, key);
  if (!q.step()) return entry_row::absent;
  std::string why;
  return read_entry(q, why) ? entry_row::readable : entry_row::unreadable;
}

bool cache_store::state::delete_entry(const digest& key) {
  db.prepare(delete_entry_sql).bind(1, key).run();
  return db.changes() > 0;
}

cache_result cache_store::state::unreadable_row(const digest& key, std::string_view why) {
  if (!read_only) delete_entry(key);
  cache_result result;
  result.status = cache_status::index_corrupt;
  result.message = fmt::format("cache entry {}: its row in {} is unreadable ({}); {}", key.hex(), index_file.string(),
                               why, read_only ? "the index is read-only: the row stays" : "the row was removed");
  return result;
}

// ---- cache_store ---------------------------------------------------------------

cache_store::cache_store(const fs::path& directory, cache_store_options options) {
  guard_failures(directory, "open", [&] {
    state_ = std::make_unique<state>(directory, std::move(options));
    state_->open();
  });
}

cache_store::~cache_store() = default;

const fs::path& cache_store::directory() const noexcept { return state_->directory; }
fs::path cache_store::blob_path(const digest& content) const { return state_->blobs.path_of(content); }
fs::path cache_store::index_path() const { return state_->index_file; }
bool cache_store::read_only() const noexcept { return state_->read_only; }
const std::string& cache_store::read_only_reason() const noexcept { return state_->read_only_why; }

void cache_store::set_warning_sink(std::function<void(std::string)> sink) {
  const std::scoped_lock lock(state_->sink_mutex);
  state_->warning_sink = std::move(sink);
}

void cache_store::warn(std::string message) const noexcept { state_->warn(std::move(message)); }

void cache_store::state::warn(std::string message) const noexcept {
  try {
    const std::scoped_lock lock(sink_mutex);
    if (warning_sink) {
      warning_sink(message);
      return;
    }
  } catch (const std::exception&) {  // an observer that threw: said below instead
  }
  std::fprintf(stderr, "penstock: %s\n", message.c_str());
}

bool cache_store::fresh(std::chrono::system_clock::time_point last_used) const { return state_->fresh(last_used); }

cache_result cache_store::lookup(const digest& key) {
  auto& s = *state_;
  return s.guarded("lookup", [&] {
    auto guard = s.lock();
    cache_result result;
    std::string why;
    {
      auto q = s.db.prepare(select_entry_sql);
      q.bind(1, key);
      if (!q.step()) return result;
      if (auto e = read_entry(q, why)) {
        result.status = cache_status::hit;
        result.entry = std::move(*e);
        return result;
      }
    }
    return s.unreadable_row(key, why);
  });
}

std::vector<cache_result> cache_store::lookup(std::span<const digest> keys) {
  auto& s = *state_;
  return s.guarded("lookup", [&] {
    auto guard = s.lock();
    std::vector<cache_result> results(keys.size());
    std::vector<std::pair<std::size_t, std::string>> unreadable;
    {
      // The keys in the index's order, read in one pass (database::seek_each).
      std::vector<sqlite::digest_bytes> bytes(keys.size());
      std::vector<std::size_t> order(keys.size());
      for (std::size_t i = 0; i < keys.size(); ++i) {
        bytes[i] = sqlite::to_bytes(keys[i]);
        order[i] = i;
      }
      std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return bytes[a] < bytes[b]; });
      std::vector<std::span<const std::byte>> sorted(keys.size());
      for (std::size_t k = 0; k < keys.size(); ++k) sorted[k] = std::as_bytes(std::span(bytes[order[k]]));
      sqlite::transaction tx(s.db, sqlite::transaction_kind::read);  // one snapshot
      s.db.seek_each(select_planned_entry_sql, 4, sorted, [&](std::size_t k, const sqlite::query& q) {
        const std::size_t i = order[k];
        std::string why;
        if (auto e = read_planned_entry(q, keys[i], why)) {
          results[i].status = cache_status::hit;
          results[i].entry = std::move(*e);
        } else {
          unreadable.emplace_back(i, std::move(why));
        }
      });
      tx.commit();
    }
    for (const auto& [i, why] : unreadable) results[i] = s.unreadable_row(keys[i], why);
    return results;
  });
}

void cache_store::touch(std::span<const digest> keys) {
  auto& s = *state_;
  if (s.read_only) return;  // last_used stays as it is: gc is someone else's
  s.guarded("touch", [&] {
    auto guard = s.lock();
    sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
    const std::int64_t at = s.stamp();
    const std::int64_t stale_before = s.stale_before();
    for (const auto& key : keys) {
      s.db.prepare(touch_stale_entry_sql).bind(1, key).bind(2, at).bind(3, stale_before).run();
    }
    tx.commit();
  });
}

cache_result cache_store::get(const digest& key,
                              const std::function<std::span<std::byte>(const cache_entry&)>& destination) {
  return get_parts(key, [&destination](const cache_entry& e) { return std::vector{destination(e)}; });
}

cache_result cache_store::get_parts(
    const digest& key, const std::function<std::vector<std::span<std::byte>>(const cache_entry&)>& destination) {
  auto& s = *state_;
  return s.guarded("get", [&] {
    cache_result result;
    std::int64_t mark_id = 0;
    std::vector<std::byte> inline_bytes;
    // Reads the key's row: false if there is none; else `entry` is set if the
    // row is readable (`why` says what is wrong if not), and an inline value's
    // bytes are copied into inline_bytes.
    const auto read_row = [&](std::optional<cache_entry>& entry, std::string& why) {
      auto q = s.db.prepare(select_entry_value_sql);
      q.bind(1, key);
      if (!q.step()) return false;
      entry = read_entry(q, why);
      if (entry && entry->inline_value) {
        const auto bytes = q.bytes_at(8);
        inline_bytes.assign(bytes.begin(), bytes.end());
      }
      return true;
    };
    // 1. Find the row and mark its blob in use, in one transaction: gc either
    //    ran before (and the row is gone) or sees the mark. An inline value is
    //    copied out of the row instead (no file, no mark).
    {
      auto guard = s.lock();
      // 1'. An inline value used within touch_interval needs no write: one
      //     SELECT, its own read transaction. (A rerun's outputs, mostly.)
      {
        std::optional<cache_entry> entry;
        std::string why;
        if (!read_row(entry, why)) return result;
        if (s.read_only) {
          // No mark (gc is someone else's: a blob removed under the read is a
          // reported miss), no touch, nothing removed.
          if (!entry) return s.unreadable_row(key, why);
          result.entry = std::move(*entry);
        } else if (entry && entry->inline_value && s.fresh(entry->last_used)) {
          result.entry = std::move(*entry);
        }
      }
      if (!result.entry.inline_value && !s.read_only) {
        sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
        std::optional<cache_entry> entry;
        std::string why;
        const bool found = read_row(entry, why);
        if (found && !entry) {
          result = s.unreadable_row(key, why);
        } else if (entry) {
          if (!entry->inline_value) mark_id = s.insert_mark(entry->content);
          if (!s.fresh(entry->last_used)) {
            const std::int64_t used = s.stamp();
            s.db.prepare(touch_entry_sql).bind(1, key).bind(2, used).run();
            entry->last_used = from_ns(used);
          }
          result.entry = std::move(*entry);
        }
        tx.commit();
        if (!found || !entry) return result;
      }
    }
    const cache_entry& entry = result.entry;
    const digest content = entry.content;
    const auto parts_for = [&] {
      std::vector<std::span<std::byte>> parts = call_back([&] { return destination(entry); });
      if (const std::size_t holds = total_size(parts); holds != entry.size) {
        throw std::invalid_argument(
            fmt::format("cache entry {}: the destination holds {} bytes, the value {}", key.hex(), holds, entry.size));
      }
      return parts;
    };

    // 2'. An inline value: verify the copy, outside the lock; a bad one goes
    //     with its row (if the row still holds it: a writer may have replaced it).
    if (entry.inline_value) {
      const std::vector<std::span<std::byte>> parts = parts_for();
      if (inline_bytes.size() != entry.size) {
        result.status = cache_status::blob_truncated;
        result.message =
            fmt::format("cache entry {}: its inline value in {} (digest {}) has {} bytes, the index says {}", key.hex(),
                        s.index_file.string(), content.hex(), inline_bytes.size(), entry.size);
      } else {
        hasher hash;
        std::size_t at = 0;
        for (const auto& part : parts) {
          if (part.empty()) continue;
          std::memcpy(part.data(), inline_bytes.data() + at, part.size());
          hash.update(part.data(), part.size());
          at += part.size();
        }
        if (const digest actual = hash.finish(); actual != content) {
          result.status = cache_status::blob_corrupt;
          result.message =
              fmt::format("cache entry {}: its inline value in {} does not match its digest {} (its bytes hash to {})",
                          key.hex(), s.index_file.string(), content.hex(), actual.hex());
        } else {
          result.status = cache_status::hit;
        }
      }
      if (!result.hit() && s.read_only) {
        result.message += "; the index is read-only: the row stays";
      } else if (!result.hit()) {
        auto guard = s.lock();
        s.db.prepare(delete_inline_entry_sql)
            .bind(1, key)
            .bind(2, content)
            .bind(3, std::span(std::as_const(inline_bytes)))
            .run();
        result.message += "; the index row was removed, the value will be recomputed";
      }
      return result;
    }

    // 2. Read and verify, outside the lock.
    blob_read read;
    try {
      const std::vector<std::span<std::byte>> parts = parts_for();
      read = s.blobs.read(key, content, entry.size, parts);
    } catch (...) {
      s.unmark_after_failure(content, mark_id);
      throw;
    }
    result.status = read.status;
    result.message = std::move(read.message);

    // 3. Unmark; a bad blob goes, with every row that names it (inline rows
    //    with this digest hold their own copy and stay).
    if (s.read_only) {
      if (!result.hit()) result.message += "; the cache directory is read-only: nothing was removed";
      return result;
    }
    auto guard = s.lock();
    sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
    s.unmark(content, mark_id);
    if (!result.hit()) {
      if (read.opened) s.blobs.remove_if_unchanged(content, read.seen);
      s.db.prepare(delete_entries_of_digest_sql).bind(1, content).run();
      result.message += "; the blob and the index rows naming it were removed, the value will be recomputed";
    }
    tx.commit();
    return result;
  });
}

cache_result cache_store::get(const digest& key, std::vector<std::byte>& out) {
  return get(key, [&](const cache_entry& e) {
    try {
      out.resize(e.size);
    } catch (...) {  // std::bad_alloc, std::length_error: the store's failure, not the caller's
      std::throw_with_nested(cache_error(
          fmt::format("cache entry {}: no room for its {} bytes: {}", key.hex(), e.size, current_exception_text())));
    }
    return std::span<std::byte>(out);
  });
}

cache_result cache_store::load(const digest& key, const std::function<void(std::istream&)>& read) {
  std::vector<std::byte> bytes;
  cache_result result = get(key, bytes);
  if (!result.hit()) return result;
  memory_streambuf buffer(bytes);
  std::istream in(&buffer);
  try {
    read(in);
  } catch (...) {
    const std::string from = result.entry.inline_value
                                 ? fmt::format("its inline value in {}", state_->index_file.string())
                                 : fmt::format("blob {}", state_->blobs.path_of(result.entry.content).string());
    std::throw_with_nested(cache_error(
        fmt::format("cannot load the value of cache entry {} from {}: {}", key.hex(), from, current_exception_text())));
  }
  return result;
}

bool cache_store::erase(const digest& key) {
  auto& s = *state_;
  return s.guarded("erase", [&] {
    s.require_writable("erase a cache entry");
    auto guard = s.lock();
    return s.delete_entry(key);
  });
}

cache_stats cache_store::stats() {
  auto& s = *state_;
  return s.guarded("stats", [&] {
    auto guard = s.lock();
    cache_stats out;
    sqlite::transaction tx(s.db, sqlite::transaction_kind::read);  // one snapshot for all the counts
    {
      auto q = s.db.prepare(count_entries_sql);
      if (q.step()) out.entries = static_cast<std::uint64_t>(q.integer(0));
    }
    {
      auto q = s.db.prepare(count_blobs_sql);
      if (q.step()) {
        out.blobs = static_cast<std::uint64_t>(q.integer(0));
        out.bytes = static_cast<std::uint64_t>(q.integer(1));
      }
    }
    {
      auto q = s.db.prepare(count_inline_sql);
      if (q.step()) {
        out.inline_values = static_cast<std::uint64_t>(q.integer(0));
        out.bytes += static_cast<std::uint64_t>(q.integer(1));
      }
    }
    {
      auto q = s.db.prepare(count_leases_sql);
      if (q.step()) out.leases = static_cast<std::uint64_t>(q.integer(0));
    }
    tx.commit();
    return out;
  });
}

}  // namespace penstock::detail::r1
