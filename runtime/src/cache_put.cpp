// cache_put: storing an entry (put of contiguous bytes or of a streamed
// value): an inline value in its row, or a blob file put in place before the row that names it.
#include <unistd.h>

#include <ostream>
#include <utility>

#include <fmt/format.h>

#include "blob_streams.hpp"
#include "cache_store_state.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

constexpr const char* insert_entry_sql =
    "INSERT OR REPLACE INTO entries(key, digest, size, type, run_id, created, last_used, inline_value) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)";
constexpr const char* delete_lease_sql = "DELETE FROM leases WHERE key = ?1 AND owner = ?2 AND id = ?3";

}  // namespace

void cache_store::state::commit_row(const digest& key, const digest& content, std::uint64_t size, const put_info& info,
                                    bool inline_value, std::span<const std::byte> bytes, std::int64_t mark_id,
                                    std::int64_t lease_id) {
  sqlite::transaction tx(db, sqlite::transaction_kind::write);
  {
    auto q = db.prepare(insert_entry_sql);
    q.bind(1, key)
        .bind(2, content)
        .bind(3, static_cast<std::int64_t>(size))
        .bind(4, info.type)
        .bind(5, info.run_id)
        .bind(6, stamp());
    if (inline_value) {
      q.bind(7, bytes);
    } else {
      q.bind_null(7);
    }
    q.run();
  }
  if (mark_id != 0) unmark(content, mark_id);
  if (lease_id != 0) {
    db.prepare(delete_lease_sql).bind(1, key).bind(2, self.token).bind(3, lease_id).run();
  }
  tx.commit();
}

// Stores a value of at most cache_inline_max bytes in its index row: the
// commit publishes it whole, with no file and no fsync, and nothing for gc
// to unlink, so no in-use mark either.
put_result cache_store::state::publish_inline(const digest& key, const digest& content,
                                              std::span<const std::byte> bytes, const put_info& info,
                                              std::int64_t lease_id) {
  auto guard = lock();
  commit_row(key, content, bytes.size(), info, true, bytes, 0, lease_id);
  return put_result{content, bytes.size(), false, true};
}

// Puts a blob in place (unless one with this digest is there) and then the
// index row naming it; see the integrity rules in cache_store.hpp. Either
// `temp` is a complete file (fsync'ed unless `temp_unsynced`: then it is
// fsync'ed here before it is renamed into place), or it is empty and
// `bytes` are written.
put_result cache_store::state::publish(const digest& key, const digest& content, std::uint64_t size,
                                       const put_info& info, fs::path temp, std::span<const std::byte> bytes,
                                       std::int64_t lease_id, bool temp_unsynced) {
  std::int64_t mark_id = 0;
  try {
    mark_id = mark(content);  // gc leaves the blob alone from here on
  } catch (...) {
    if (!temp.empty()) ::unlink(temp.c_str());  // ours alone: nobody else knows its name
    throw;
  }
  put_result result{content, size, false};
  try {
    if (blobs.holds(content, size)) {
      if (!temp.empty()) ::unlink(temp.c_str());  // the same bytes are stored already
      temp.clear();
    } else {
      const bool unsynced = !temp.empty() && temp_unsynced;
      if (temp.empty()) temp = blobs.write_temporary(bytes);
      blobs.place(temp, content, unsynced);
      temp.clear();
      result.wrote_blob = true;
    }
    auto guard = lock();
    commit_row(key, content, size, info, false, {}, mark_id, lease_id);
  } catch (...) {
    if (!temp.empty()) ::unlink(temp.c_str());
    unmark_after_failure(content, mark_id);
    throw;
  }
  return result;
}

// ---- cache_store -------------------------------------------------------------

put_result cache_store::put(const digest& key, std::span<const std::byte> bytes, const put_info& info,
                            cache_lease* lease) {
  auto& s = *state_;
  const std::int64_t lease_id = lease_id_for(key, lease);
  return s.guarded("put", [&] {
    s.require_writable("store a value");
    put_result result;
    if (bytes.size() >= large_value_min) {
      // A large value is hashed piece by piece as it is written to a temporary
      // file (one pass over memory, not two); only then is the digest known.
      // If a blob with that digest is already stored, the file goes unsynced
      // (a write to the page cache wasted, no fsync); else it is fsync'ed and
      // renamed into place.
      hasher hash;
      fs::path temp = s.blobs.write_temporary(bytes, &hash);
      const digest content = hash.finish();
      result = s.publish(key, content, bytes.size(), info, std::move(temp), {}, lease_id, true);
    } else {
      // Hashing first lets an already stored value cost no write at all: the
      // common case when a rerun step produces the same output (early cutoff).
      const digest content = hasher().update(bytes.data(), bytes.size()).finish();
      result = bytes.size() <= cache_inline_max ? s.publish_inline(key, content, bytes, info, lease_id)
                                                : s.publish(key, content, bytes.size(), info, {}, bytes, lease_id);
    }
    if (lease_id != 0) lease->store_ = nullptr;  // released with the row
    return result;
  });
}

put_result cache_store::put(const digest& key, const std::function<digest(std::ostream&)>& write, const put_info& info,
                            cache_lease* lease) {
  auto& s = *state_;
  const std::int64_t lease_id = lease_id_for(key, lease);
  return s.guarded("put", [&] {
    s.require_writable("store a value");
    staging_streambuf buffer([&s] { return s.blobs.temporary_path(); });
    digest content;
    std::uint64_t size = 0;
    fs::path temp;
    {
      std::ostream out(&buffer);
      const auto where = [&] {
        return buffer.spilled() ? buffer.temporary().string()
                                : fmt::format("a temporary file in {}", s.blobs.directory().string());
      };
      digest claimed;
      try {
        claimed = write(out);
        out.flush();
      } catch (...) {
        // The temporary goes with `buffer`; the lease stays held. A stream
        // the store could not write (ENOSPC, EIO, ENOMEM) is the cause, whatever
        // the save function made of it (cereal: "Failed to write ... bytes").
        if (buffer.error() != 0) {
          std::throw_with_nested(cache_error(fmt::format("cannot write the value of cache key {} to {}: {}", key.hex(),
                                                         where(), errno_text(buffer.error()))));
        }
        std::throw_with_nested(cache_error(
            fmt::format("the save function for cache key {} failed: {}", key.hex(), current_exception_text())));
      }
      if (buffer.error() != 0) {
        throw cache_error(fmt::format("cannot write the value of cache key {} to {}: {}", key.hex(), where(),
                                      errno_text(buffer.error())));
      }
      if (!out) {
        throw cache_error(
            fmt::format("writing the value of cache key {} to {} failed (stream error)", key.hex(), where()));
      }
      if (buffer.spilled()) {
        content = buffer.finish();
        size = buffer.size();
      } else {
        const auto bytes = buffer.memory();
        content = hasher().update(bytes.data(), bytes.size()).finish();
        size = bytes.size();
      }
      if (claimed != content) {
        throw cache_error(
            fmt::format("the save function for cache key {} returned digest {}, but the bytes it wrote hash to {}",
                        key.hex(), claimed.hex(), content.hex()));
      }
      if (buffer.spilled()) temp = buffer.complete();  // fsync'ed; from here on publish() owns the file
    }
    put_result result = temp.empty() ? s.publish_inline(key, content, buffer.memory(), info, lease_id)
                                     : s.publish(key, content, size, info, temp, {}, lease_id);
    if (lease_id != 0) lease->store_ = nullptr;  // released with the row
    return result;
  });
}

}  // namespace penstock::detail::r1
