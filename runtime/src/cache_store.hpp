// cache_store: the content-addressed store behind the step cache (design.md,
// "Caching model"). Blobs are files named by the XXH3-128 digest of their
// bytes; an SQLite index (WAL) maps each step-run key to its output digest and
// holds the leases and in-use marks that let processes share one directory.
// Values of at most cache_inline_max bytes have no file: their bytes are a
// column of their index row ("inline values"). The index also keeps run and
// step records and known file digests. A directory that cannot be written
// is served read-only (see cache_store).
// Private to the runtime: the executor and the CLI are its users. Its parts,
// a file each under runtime/src: cache_store.cpp and cache_put.cpp (entries),
// cache_leases.cpp, cache_gc.cpp, run_records.cpp, known_files.cpp,
// cache_index.cpp (opening the index, schema migrations), blob_store and
// blob_streams (blob files), on sqlite_db, posix_file and process_identity;
// cache_store_state.hpp is what they share.
//
// Layout of a cache directory:
//   blobs/<first 2 hex digits>/<32 hex digits>   one file per content digest, read-only
//   blobs/.tmp-<host>-<pid>-<start>-<random>     a blob being written (renamed into place when done) by
//                                                process <pid>, started at <start> (/proc/<pid>/stat)
//   index.sqlite (+ -wal, -shm)                  tables entries, leases, in_use (schema 1),
//                                                runs, steps (schema 2: run and step records),
//                                                entries.inline_value (schema 3: inline values),
//                                                leases.started, in_use.started (schema 4: owner start time),
//                                                file_stats (schema 5: known file digests, see known_file)
//
// Integrity rules (each one is tested in tests/test_cache_store.cpp):
// * A blob appears under its final name only complete and fsync'ed (temporary
//   file, fsync, rename, fsync of the directory), and before the index row
//   that names it is committed. An inline value is written whole in the
//   transaction that writes its row (no file, no fsync: the commit publishes
//   it). A reader therefore never sees half a value.
// * get() hashes every byte it reads (from a blob or from an inline value) and
//   compares with the digest before it reports a hit. A missing, truncated or
//   corrupt blob or inline value, or an unreadable index row, is a miss with
//   its own status and a message naming the key, the digest and the file (the
//   index for an inline value); the bad blob and the rows naming it (the bad
//   row, for an inline value) are removed, so the next run recomputes and
//   stores it again (a read-only store removes nothing).
// * gc never removes an entry whose key is leased, nor a blob that has a live
//   in-use mark, nor a blob that a row names. get() marks the digest before
//   it opens the blob and unmarks it when it has read and verified it; put()
//   marks it before it checks for an existing blob and unmarks it in the
//   transaction that writes the index row. gc deletes rows first (and
//   commits), then unlinks each blob inside a write transaction that checks,
//   just before, that no row names it and no live mark protects it: a mark
//   is either seen by gc or placed after gc unlinked the blob (and put()
//   then writes it again). So a crash or an error at any point of gc leaves
//   no row without its blob, at worst a blob without a row (an orphan, which
//   the next gc removes). Inline values need no mark: get() copies them out
//   of the row in the transaction that finds it, and put() writes them in
//   the one that writes the row.
// * put() given the lease of its key releases it in the transaction that
//   writes the index row, so the key is never unleased and unstored.
// * A temporary file whose writer is certainly dead (on this host, its pid is
//   gone or now names a process started at another time) is removed when a
//   store is next opened for writing, and by gc; gc also removes old-format
//   temporaries (no start time) of a dead pid, and any temporary nobody
//   touched for 24 hours.
// * A lease or mark is live while its expiry is in the future and, when it
//   was taken on this host, its owner process is alive (the same pid and the
//   same start time: a new process given a dead owner's pid does not keep its
//   rows alive); a dead owner's lease is taken over at once, and its marks
//   are dropped by the next gc.
// * Run and step records (record_run, record_steps) are bookkeeping, not
//   cache content: gc never touches them. Run rows are bounded (see
//   cache_store_options::runs_kept); step rows are one per (pipeline, step).
// * A known file digest (remember_files) is returned by known_file only
//   while every stat field of the file is the one it was stored with; gc
//   removes it only once its path no longer exists.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/digest.hpp>

#include "cache_error.hpp"

namespace penstock::detail::r1 {

// What a file's stat said when it was hashed (the file_stats table, schema 5).
struct file_stat_row {
  std::string path;  // absolute, as bytes (need not be UTF-8)
  std::uint64_t device = 0, inode = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
};
struct known_file_digest {
  digest content;
  std::int64_t hashed_at_ns = 0;  // when it was hashed (wall clock)
};
// Whether two rows' stat fields (all but the path) are equal.
[[nodiscard]] inline bool same_stat_fields(const file_stat_row& a, const file_stat_row& b) noexcept {
  return a.device == b.device && a.inode == b.inode && a.size == b.size && a.mtime_ns == b.mtime_ns &&
         a.ctime_ns == b.ctime_ns;
}

// $PENSTOCK_HOME if it is set and not empty, else .penstock under the current
// working directory (made absolute).
[[nodiscard]] std::filesystem::path default_cache_directory();

// Values of at most this many bytes are stored in their index row, not in a
// blob file (schema 3).
inline constexpr std::size_t cache_inline_max = std::size_t{64} << 10;

// cache_error (cache_error.hpp): a failure of the store itself (the directory cannot be written, the index
// cannot be opened or is locked for too long, a disk error while writing,
// memory exhausted). Corrupt cache content is never reported this way: see
// cache_status. No function of cache_store lets another exception out but
// std::invalid_argument, for a caller's mistake where it says so, and the
// exceptions of a caller's `destination` (get, get_parts), which pass
// unchanged; a failure of another kind inside the store (std::bad_alloc,
// std::system_error, ...) becomes a cache_error with the original nested.

enum class cache_status : std::uint8_t {
  hit,             // the value, verified against its digest
  absent,          // no entry for the key: an ordinary miss
  blob_missing,    // the index names a blob that does not exist
  blob_truncated,  // the blob's size differs from the index's
  blob_corrupt,    // the blob's bytes do not hash to its digest, or cannot be read
  index_corrupt,   // the index row cannot be parsed
};
// All statuses but hit and absent are reported misses: the message says what
// was wrong and what was removed.
[[nodiscard]] std::string_view to_string(cache_status status) noexcept;

struct cache_entry {
  digest key;      // the step-run key
  digest content;  // XXH3-128 of the stored bytes
  std::uint64_t size = 0;
  digest type;         // the output type's fingerprint (value_traits<T>::type_fingerprint())
  std::string run_id;  // the run that produced it
  std::chrono::system_clock::time_point created;
  std::chrono::system_clock::time_point last_used;
  // The bytes are in the index row (size <= cache_inline_max): no blob file,
  // and blob_path(content) names no file.
  bool inline_value = false;
};

struct cache_result {
  cache_status status = cache_status::absent;
  cache_entry entry;    // meaningful when status is hit
  std::string message;  // empty for hit and absent
  [[nodiscard]] bool hit() const noexcept { return status == cache_status::hit; }
  explicit operator bool() const noexcept { return hit(); }
};

struct put_info {
  digest type;
  std::string_view run_id;
};

struct put_result {
  digest content;
  std::uint64_t size = 0;
  bool wrote_blob = false;    // false: a blob with this digest was already stored, or the value is inline
  bool inline_value = false;  // stored in the index row (size <= cache_inline_max)
};

struct cache_stats {
  std::uint64_t entries = 0;        // index rows
  std::uint64_t blobs = 0;          // distinct digests the file-backed rows name
  std::uint64_t bytes = 0;          // their sizes, each blob counted once, plus every inline value's size
  std::uint64_t leases = 0;         // lease rows, live or not
  std::uint64_t inline_values = 0;  // rows holding their value inline
};

struct gc_limits {
  // Least recently used entries go first until the blobs they name (and the
  // inline values) fit in max_bytes; any entry not used for longer than
  // max_age goes too.
  std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max();
  std::chrono::nanoseconds max_age = std::chrono::nanoseconds::max();
};

struct gc_result {
  std::uint64_t entries_removed = 0;
  std::uint64_t blobs_removed = 0;
  std::uint64_t bytes_freed = 0;          // blob files and inline values
  std::uint64_t skipped_in_use = 0;       // entries gc wanted to remove but were leased or being read
  std::uint64_t bad_rows_removed = 0;     // unparsable index rows
  std::uint64_t orphans_removed = 0;      // blobs no entry names (a writer died between rename and index)
  std::uint64_t temporaries_removed = 0;  // blobs/.tmp-* of dead writers
  std::uint64_t stale_marks_removed = 0;  // expired leases and in-use marks, or their owner died
  std::uint64_t file_stats_removed = 0;   // known file digests whose path no longer exists
};

struct cache_store_options {
  // How long a write transaction waits for another process's (SQLite busy_timeout).
  std::chrono::milliseconds busy_timeout{30'000};
  // Expiry of the in-use mark a reader or writer holds; only matters when the
  // owner runs on another host (on this host a dead owner's mark is dropped).
  std::chrono::seconds mark_ttl{3600};
  // An entry's last_used is rewritten (by get() and touch()) only when it is
  // older than this: gc's least-recently-used order needs no finer grain,
  // and a rerun that only reads fresh entries writes nothing to the index.
  std::chrono::seconds touch_interval{3600};
  // The time source for created / last_used / expiry stamps; empty: system_clock. For tests.
  std::function<std::chrono::system_clock::time_point()> clock;
  // record_run keeps the runs_kept latest runs (by start time) of all
  // pipelines together, and besides them the latest run of each pipeline
  // however old, so that `cache stats` of a rarely run pipeline still finds
  // it. The rows are pruned back to that once they pass it by runs_kept / 64
  // (a prune sorts them all): at most runs_kept + runs_kept / 64 +
  // (number of pipelines) rows.
  std::size_t runs_kept = 1000;
  // Open the index read-only even if the directory can be written (see
  // cache_store::read_only). A directory that cannot be written is opened
  // read-only without it.
  bool read_only = false;
};

// One run of a pipeline that used the cache, written by the executor at its end.
struct run_record {
  std::string run_id;  // unique per run; recording the same id again replaces the row
  std::string pipeline;
  std::chrono::system_clock::time_point started;
  std::chrono::nanoseconds wall{};
  std::uint64_t steps = 0, hits = 0, computed = 0, reported_misses = 0 /*corrupt/missing blobs*/, failed = 0;
};

// The key a step had in some run and what it was made of, for `explain`.
struct step_record {
  std::string pipeline;
  std::string step;
  digest key;
  std::string components;  // opaque JSON text written by the executor, returned as stored
  std::string run_id;
  std::chrono::system_clock::time_point when;
};

class cache_store;

// The right to compute one key, held by one cache_store. Move-only; released
// by release() or by the destructor. Must not outlive its store.
class cache_lease {
 public:
  cache_lease() = default;
  cache_lease(cache_lease&& other) noexcept;
  cache_lease& operator=(cache_lease&& other) noexcept;
  cache_lease(const cache_lease&) = delete;
  cache_lease& operator=(const cache_lease&) = delete;
  ~cache_lease();

  [[nodiscard]] bool held() const noexcept { return store_ != nullptr; }
  [[nodiscard]] const digest& key() const noexcept { return key_; }
  // Extends the expiry to now + ttl. False if the lease was lost (it expired
  // and another owner took it over).
  bool renew(std::chrono::seconds ttl);
  // Gives the key back. False if it had already been taken over. Idempotent.
  bool release();

 private:
  friend class cache_store;
  cache_lease(cache_store* store, const digest& key, std::uint64_t id) noexcept : store_(store), key_(key), id_(id) {}
  cache_store* store_ = nullptr;
  digest key_;
  std::uint64_t id_ = 0;  // distinguishes this store's leases on the same key over time
};

enum class lease_status : std::uint8_t {
  acquired,  // the caller computes the key, then put()s it and releases the lease
  held,      // another owner computes it: retry later (or use acquire_or_wait)
  cached,    // an entry for the key exists: get() it
};

struct lease_attempt {
  lease_status status = lease_status::held;
  cache_lease lease;   // held when status is acquired
  std::string holder;  // who holds it (held), or whose stale lease was taken over (acquired); else empty
};

// One directory, one SQLite connection. Thread-safe: index work is
// serialized on an internal mutex, blob I/O runs outside it. Not usable
// across fork(): the child opens its own store (using the parent's throws).
//
// Read-only: a store whose directory, blobs/ or index cannot be written
// (EACCES, EPERM, EROFS: another user's cache, a read-only mount), or opened
// with cache_store_options::read_only, opens the index with
// SQLITE_OPEN_READONLY. If SQLite cannot read its WAL there (it needs the
// -shm file, which a read-only directory cannot have made once the last
// writer checkpointed the WAL and deleted both), the index file is read as
// immutable: as of its last checkpoint. A missing index is an empty one.
// lookup(), get(), get_parts(), load(), stats(), last_run(), last_steps()
// work, every value still verified; but no in-use mark protects a blob
// being read (a blob another process's gc removes under the read is a
// reported miss), last_used is never updated, and nothing is removed: a bad
// row or blob is a reported miss that stays. touch() does nothing; put(),
// try_acquire() (so acquire_or_wait()), erase(), gc(), record_run() and
// record_steps() throw cache_error naming the directory and why it is
// read-only. An index of schema 1 or 2 cannot be read without its
// migration: opening one read-only is a cache_error.
class cache_store {
 public:
  explicit cache_store(const std::filesystem::path& directory, cache_store_options options = {});
  cache_store(const cache_store&) = delete;
  cache_store& operator=(const cache_store&) = delete;
  ~cache_store();

  [[nodiscard]] const std::filesystem::path& directory() const noexcept;
  [[nodiscard]] std::filesystem::path blob_path(const digest& content) const;
  [[nodiscard]] std::filesystem::path index_path() const;
  // The index was opened read-only (see above), and why ("" if it was not).
  [[nodiscard]] bool read_only() const noexcept;
  [[nodiscard]] const std::string& read_only_reason() const noexcept;
  // Where what the store could not do but did without goes (a lease or an
  // in-use mark it could not give back): a run sets its observers' warning
  // here, and takes it back (nullptr) before it ends; with none, stderr.
  // Thread-safe.
  void set_warning_sink(std::function<void(std::string)> sink);
  void warn(std::string message) const noexcept;

  // Stores contiguous bytes under `key` (replacing what the key named). The
  // fast path: the bytes are hashed, then stored inline if they are small,
  // else written with one write() call unless a blob with their digest is
  // already stored. From 8 MiB on, they are hashed piece by piece as they
  // are written to a temporary file, which is dropped unsynced if the blob
  // turns out to be stored already.
  //
  // `lease`, if given and held, must be this store's lease on `key` (else
  // std::invalid_argument): it is released in the transaction that writes
  // the index row (then lease->held() is false). On an exception it stays held.
  put_result put(const digest& key, std::span<const std::byte> bytes, const put_info& info,
                 cache_lease* lease = nullptr);
  // Streams a value: `write` writes it to the stream (value_traits<T>::save,
  // slot_functions::save) and returns the digest of what it wrote, which must
  // equal the digest the store computes while writing it. The first
  // cache_inline_max bytes stay in memory (a value that fits is stored
  // inline); a larger value goes to a temporary file. `lease`: as above.
  //
  // Any exception from `write` (cereal::Exception, std::bad_alloc, one not
  // derived from std::exception...) is rethrown as a cache_error naming the
  // key and saying what the original said, with the original nested
  // (std::rethrow_if_nested gives it back). If the store could not write the
  // stream (ENOSPC, EIO, ENOMEM: a save function sees a short write or a bad
  // stream), the cache_error gives that errno instead. Either way the
  // temporary file is removed, the lease stays held and the store is usable.
  put_result put(const digest& key, const std::function<digest(std::ostream&)>& write, const put_info& info,
                 cache_lease* lease = nullptr);

  // The index only: digest, size, type and run id, no blob touched and
  // last_used not updated (for planning). A hit here may still turn out to be
  // a reported miss when the blob is read.
  [[nodiscard]] cache_result lookup(const digest& key);
  // The same for many keys in one read transaction (a planner's batch); a
  // hit's entry holds the key, content, size, last_used and inline_value
  // only (type, run_id and created are left empty: not read).
  [[nodiscard]] std::vector<cache_result> lookup(std::span<const digest> keys);
  // Whether an entry last used at `last_used` was used within touch_interval
  // (touch() and get() leave such an entry's last_used as it is).
  [[nodiscard]] bool fresh(std::chrono::system_clock::time_point last_used) const;
  // Marks entries as used now (a planner keeps the entries it relies on fresh
  // for gc), in one transaction. Unknown keys are ignored, and so are entries
  // used within touch_interval.
  void touch(std::span<const digest> keys);

  // Reads the value into the span `destination(entry)` returns, which must be
  // entry.size bytes (else std::invalid_argument); on a hit the span holds
  // the verified bytes, on any other status its contents are unspecified.
  // `destination` runs with the blob already protected from gc (an inline
  // value has already been copied out of the index).
  [[nodiscard]] cache_result get(const digest& key,
                                 const std::function<std::span<std::byte>(const cache_entry&)>& destination);
  [[nodiscard]] cache_result get(const digest& key, std::vector<std::byte>& out);
  // The same into several spans, filled in order, whose sizes must add up to
  // entry.size: a value read straight into its own storage, its header apart
  // (value_traits' contiguous load). An exception from `destination` leaves
  // the entry as it was and propagates.
  [[nodiscard]] cache_result get_parts(
      const digest& key, const std::function<std::vector<std::span<std::byte>>(const cache_entry&)>& destination);
  // Reads and verifies the value, then hands it to `read` as a stream
  // (value_traits<T>::load, slot_functions::load). An exception from `read`
  // (of any type) is rethrown as cache_error naming the key and the blob,
  // the original nested.
  [[nodiscard]] cache_result load(const digest& key, const std::function<void(std::istream&)>& read);

  // Removes the key's index row (its blob goes at the next gc if no other
  // entry names it). False if there was none.
  bool erase(const digest& key);

  // Leases: see lease_status. The check for an existing entry and the lease
  // are one transaction, so a key is computed once however many processes ask.
  [[nodiscard]] lease_attempt try_acquire(const digest& key, std::chrono::seconds ttl);
  // Polls try_acquire with a bounded backoff (1 ms doubling to 50 ms) until the
  // lease is acquired or the entry appears; returns held if `timeout` passes first.
  [[nodiscard]] lease_attempt acquire_or_wait(const digest& key, std::chrono::seconds ttl,
                                              std::chrono::milliseconds timeout);

  [[nodiscard]] cache_stats stats();
  // Drops stale leases and marks, removes unparsable rows, then entries by
  // least recent use (see gc_limits) skipping leased keys and marked blobs,
  // all in one write transaction; then, holding no lock, lists blobs/ and
  // removes dead writers' temporary files, and finds the known files whose
  // path is gone (their rows go in one transaction); last, in short write
  // transactions, unlinks each blob that no entry names any more (those
  // whose entries it removed, and orphans) and no live mark protects.
  gc_result gc(const gc_limits& limits);

  // Run records. One row per run_id (std::invalid_argument if it is empty);
  // the rows beyond the bound (cache_store_options::runs_kept) go in the same
  // transaction. Nothing else removes them (gc does not).
  void record_run(const run_record& run);
  // The run with the latest `started` (among equal ones, the last recorded)
  // of `pipeline`, or of any pipeline when it is empty. Unreadable rows are
  // skipped.
  [[nodiscard]] std::optional<run_record> last_run(std::string_view pipeline = {});

  // Step records, upserted by (pipeline, step) in one transaction: a record
  // replaces the stored one unless that one has a later `when` (so two runs
  // finishing out of order keep the newer record; among equal times the last
  // written wins). gc does not remove them.
  void record_steps(std::span<const step_record> steps);
  // The stored record of every step of `pipeline`, ordered by step name;
  // unreadable rows are skipped.
  [[nodiscard]] std::vector<step_record> last_steps(std::string_view pipeline);

  // Known file digests (schema 5): the digest of a file's bytes, with the
  // stat fields the file had when it was hashed, keyed by its absolute path
  // (bytes, compared exactly; std::invalid_argument if a path does not start
  // with '/'). A caller that hashes a file it has stat()ed remembers the
  // result, and next time asks before it reads the file again.
  //
  // The digest stored for `row.path` if every stat field equals the stored
  // one; else nullopt. Read-only friendly.
  [[nodiscard]] std::optional<known_file_digest> known_file(const file_stat_row& row);
  // Many at once in one read transaction (same order as `rows`).
  [[nodiscard]] std::vector<std::optional<known_file_digest>> known_files(std::span<const file_stat_row> rows);
  // The same for rows the caller holds elsewhere (not copied).
  [[nodiscard]] std::vector<std::optional<known_file_digest>> known_files(std::span<const file_stat_row* const> rows);
  // What is stored for each absolute path (nullopt: nothing, or an
  // unreadable row), in one read transaction: asked before the files are
  // stat'ed, compared with their stat fields after (same_stat_fields).
  struct stored_file {
    file_stat_row row;  // its path left empty
    known_file_digest known;
  };
  [[nodiscard]] std::vector<std::optional<stored_file>> stored_files(std::span<const std::string* const> paths);
  // Upserts rows (one transaction). A read-only store does nothing.
  void remember_files(std::span<const std::pair<file_stat_row, known_file_digest>> rows);

 private:
  friend class cache_lease;
  struct state;
  // The id of `lease` if it is held (0 if it is null or not held);
  // std::invalid_argument if it is not this store's lease on `key`.
  [[nodiscard]] std::int64_t lease_id_for(const digest& key, const cache_lease* lease) const;
  std::unique_ptr<state> state_;
};

}  // namespace penstock::detail::r1
