// cache_gc: garbage collection of a cache directory: stale leases and marks,
// unreadable rows, entries by least recent use, orphan blobs and dead writers' temporaries.
#include <algorithm>
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
constexpr const char* digest_named_sql = "SELECT 1 FROM entries WHERE digest = ?1 AND inline_value IS NULL LIMIT 1";
// Blobs unlinked per write transaction: short enough for a put or get to wait for.
constexpr std::size_t unlinks_per_transaction = 256;

// An entry, as gc orders them (least recently used first).
struct lru_row {
  digest key;
  digest content;
  std::uint64_t size;
  std::int64_t last_used;
  bool inline_value;  // its own bytes, in the row: counted per row, no file to unlink
};

}  // namespace

// Rows first, files after: a crash (or an error) at any point leaves rows
// whose blobs are all there, and at worst blobs no row names, which the next
// gc removes as orphans. No write lock is held while blobs/ is listed.
gc_result cache_store::gc(const gc_limits& limits) {
  auto& s = *state_;
  return s.guarded("gc", [&] {
    s.require_writable("collect garbage");
    gc_result out;
    // Blobs whose last row went in step 1, with their sizes: unlinked in step 3.
    std::unordered_map<digest, std::uint64_t, digest_hash> unnamed;
    std::vector<digest> unnamed_order;  // least recently used first
    // 1. The rows, in one write transaction: stale leases and marks, unreadable
    //    rows, then entries by least recent use. No file is touched.
    {
      auto guard = s.lock();
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
          unnamed.emplace(r.content, size);
          unnamed_order.push_back(r.content);
        }
      }
      tx.commit();
    }

    // 2. Files, with no write lock held: dead writers' temporaries (nobody
    //    else knows their names), and the blob files no row names (their
    //    writer died between rename and row, or their rows were removed as
    //    corrupt) besides those step 1 left unnamed.
    out.temporaries_removed = s.blobs.remove_dead_temporaries(true);
    out.file_stats_removed = s.forget_missing_files();
    std::vector<digest> candidates = std::move(unnamed_order);
    {
      digest_set named;
      {
        auto guard = s.lock();
        sqlite::transaction tx(s.db, sqlite::transaction_kind::read);
        auto q = s.db.prepare(select_digests_sql);
        while (q.step()) {
          if (auto d = q.digest_at(0)) named.insert(*d);
        }
      }
      for (const digest& d : s.blobs.stored()) {
        if (!named.contains(d) && !unnamed.contains(d)) candidates.push_back(d);
      }
    }

    // 3. Unlink, a batch per write transaction, each blob only if, now that
    //    no one can write a row or a mark, no row names it and no live mark
    //    protects it: a put that marks the digest after this finds no file and
    //    writes it again. Nothing is written, so there is nothing to roll back.
    for (std::size_t first = 0; first < candidates.size(); first += unlinks_per_transaction) {
      auto guard = s.lock();
      sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
      const std::int64_t at = s.now();
      const std::size_t end = std::min(candidates.size(), first + unlinks_per_transaction);
      for (std::size_t i = first; i < end; ++i) {
        const digest& d = candidates[i];
        {
          auto q = s.db.prepare(digest_named_sql);
          q.bind(1, d);
          if (q.step()) continue;  // named again (a put stored the same bytes)
        }
        if (s.marked(d, at) || !remove_file(s.blobs.path_of(d))) continue;
        if (const auto it = unnamed.find(d); it != unnamed.end()) {
          ++out.blobs_removed;
          out.bytes_freed += it->second;
        } else {
          ++out.orphans_removed;
        }
      }
      tx.commit();
    }
    return out;
  });
}

}  // namespace penstock::detail::r1
