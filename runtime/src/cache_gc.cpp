// cache_gc: garbage collection of a cache directory: stale leases and marks,
// unreadable rows, entries by least recent use, orphan blobs and dead writers' temporaries.
#include <unordered_map>
#include <utility>
#include <vector>

#include <sqlite3.h>

#include "cache_store_state.hpp"
#include "posix_file.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

constexpr const char* select_leases_sql = "SELECT key, owner, id, pid, host, expires, started FROM leases";
constexpr const char* delete_lease_sql = "DELETE FROM leases WHERE key = ?1 AND owner = ?2 AND id = ?3";
constexpr const char* select_marks_sql = "SELECT digest, owner, id, pid, host, expires, started FROM in_use";
constexpr const char* delete_mark_sql = "DELETE FROM in_use WHERE digest = ?1 AND owner = ?2 AND id = ?3";
// Rows too damaged to name an owner protect nothing.
constexpr const char* delete_bad_leases_sql =
    "DELETE FROM leases WHERE typeof(key) != 'blob' OR length(key) != 16 OR typeof(owner) != 'blob' "
    "OR length(owner) != 16 OR typeof(id) != 'integer' OR typeof(pid) != 'integer' OR typeof(host) != 'text' "
    "OR typeof(expires) != 'integer'";
constexpr const char* delete_bad_marks_sql =
    "DELETE FROM in_use WHERE typeof(digest) != 'blob' OR length(digest) != 16 OR typeof(owner) != 'blob' "
    "OR length(owner) != 16 OR typeof(id) != 'integer' OR typeof(pid) != 'integer' OR typeof(host) != 'text' "
    "OR typeof(expires) != 'integer'";
// A row any of whose columns has the wrong type or length can only be
// removed: nothing in it can be trusted.
constexpr const char* delete_bad_rows_sql =
    "DELETE FROM entries WHERE typeof(key) != 'blob' OR length(key) != 16 OR typeof(digest) != 'blob' "
    "OR length(digest) != 16 OR typeof(size) != 'integer' OR size < 0 OR typeof(type) != 'blob' "
    "OR length(type) != 16 OR typeof(run_id) != 'text' OR typeof(created) != 'integer' "
    "OR typeof(last_used) != 'integer' OR typeof(inline_value) NOT IN ('null', 'blob')";
constexpr const char* select_lru_sql =
    "SELECT key, digest, size, last_used, inline_value IS NOT NULL FROM entries ORDER BY last_used, created";
constexpr const char* select_digests_sql = "SELECT DISTINCT digest FROM entries WHERE inline_value IS NULL";

// An entry, as gc orders them (least recently used first).
struct lru_row {
  digest key;
  digest content;
  std::uint64_t size;
  std::int64_t last_used;
  bool inline_value;  // its own bytes, in the row: counted per row, no file to unlink
};

}  // namespace

gc_result cache_store::gc(const gc_limits& limits) {
  auto& s = *state_;
  return s.guarded("gc", [&] {
    auto guard = s.lock();
    gc_result out;
    // One write transaction for all of it: a put or get that marks a digest
    // waits for it, then finds the world gc left (see cache_store.hpp).
    sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
    const std::int64_t at = s.now();

    // Stale leases and marks go; the live ones protect what they name.
    digest_set leased;
    digest_set in_use;
    auto sweep = [&](const char* select_sql, const char* delete_sql, digest_set& live_set) {
      std::vector<std::pair<digest, owner_row>> stale;
      {
        auto q = s.db.prepare(select_sql);
        while (q.step()) {
          const auto first = q.digest_at(0);
          const auto owner = read_owner(q, 1);
          if (!first || !owner) continue;  // an unreadable row: removed below
          if (s.live(*owner, at)) {
            live_set.insert(*first);
          } else {
            stale.emplace_back(*first, *owner);
          }
        }
      }
      for (const auto& [first, owner] : stale) {
        s.db.prepare(delete_sql).bind(1, first).bind(2, owner.owner).bind(3, owner.id).run();
        out.stale_marks_removed += static_cast<std::uint64_t>(s.db.changes());
      }
    };
    sweep(select_leases_sql, delete_lease_sql, leased);
    sweep(select_marks_sql, delete_mark_sql, in_use);
    s.db.exec(delete_bad_leases_sql);
    out.stale_marks_removed += static_cast<std::uint64_t>(s.db.changes());
    s.db.exec(delete_bad_marks_sql);
    out.stale_marks_removed += static_cast<std::uint64_t>(s.db.changes());

    s.db.prepare(delete_bad_rows_sql).run();
    out.bad_rows_removed = static_cast<std::uint64_t>(s.db.changes());

    std::vector<lru_row> rows;
    std::unordered_map<digest, std::pair<std::uint64_t, std::uint64_t>, digest_hash> blobs;  // -> (rows, size)
    std::uint64_t total = 0;
    {
      auto q = s.db.prepare(select_lru_sql);
      while (q.step()) {
        const auto row_key = q.digest_at(0);
        const auto row_content = q.digest_at(1);
        if (!row_key || !row_content) continue;  // cannot happen: bad rows were deleted above
        lru_row r{*row_key, *row_content, static_cast<std::uint64_t>(q.integer(2)), q.integer(3), q.integer(4) != 0};
        if (r.inline_value) {
          total += r.size;
        } else if (auto& [count, size] = blobs[r.content]; count++ == 0) {
          size = r.size;
          total += r.size;
        }
        rows.push_back(r);
      }
    }
    const std::int64_t max_age = limits.max_age.count();
    for (const auto& r : rows) {
      const bool too_old = at - r.last_used > max_age;
      if (!too_old && total <= limits.max_bytes) break;  // the rest are younger, and the budget holds
      if (leased.contains(r.key) || (!r.inline_value && in_use.contains(r.content))) {
        ++out.skipped_in_use;
        continue;
      }
      s.delete_entry(r.key);
      ++out.entries_removed;
      if (r.inline_value) {
        total -= r.size;
        out.bytes_freed += r.size;
        continue;
      }
      auto& [count, size] = blobs[r.content];
      if (--count == 0) {
        total -= size;
        if (remove_file(s.blobs.path_of(r.content))) {
          ++out.blobs_removed;
          out.bytes_freed += size;
        }
      }
    }

    // Files no row names: blobs whose writer died between rename and index
    // (or whose rows were removed as corrupt), and dead writers' temporaries.
    digest_set named;
    {
      auto q = s.db.prepare(select_digests_sql);
      while (q.step()) {
        if (auto d = q.digest_at(0)) named.insert(*d);
      }
    }
    out.temporaries_removed = s.blobs.remove_dead_temporaries();
    for (const digest& d : s.blobs.stored()) {
      if (!named.contains(d) && !in_use.contains(d) && remove_file(s.blobs.path_of(d))) ++out.orphans_removed;
    }
    tx.commit();
    return out;
  });
}

}  // namespace penstock::detail::r1
