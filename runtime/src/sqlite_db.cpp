// sqlite_db: the cache store's SQLite layer; see sqlite_db.hpp. Every
// failure is a cache_error naming the index file.
#include "sqlite_db.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

#include "cache_store.hpp"

namespace penstock::detail::r1::sqlite {

namespace fs = std::filesystem;

namespace {

// SQLite's default automatic checkpoint: when a commit leaves this many pages in the WAL.
constexpr int auto_checkpoint_pages = 1000;
// With checkpoints deferred, a commit still checkpoints when the WAL has
// grown to this: the owner's checkpoints, which run beside the commits,
// do not restart the WAL while commits keep coming (a WAL starts over only
// when a commit finds it all checkpointed), so they keep the tail short
// and this one, which no commit of this connection can overlap, restarts it.
constexpr int deferred_checkpoint_pages = 2 * auto_checkpoint_pages;
// A WAL of at most this many pages (4 KiB each) is left in place when the
// connection is closed (see use_wal).
constexpr int short_wal_pages = 128;

}  // namespace

digest_bytes to_bytes(const digest& d) noexcept {
  digest_bytes out{};
  for (int i = 0; i < 8; ++i) {
    out[static_cast<std::size_t>(i)] = static_cast<unsigned char>(d.high >> (56 - 8 * i));
    out[static_cast<std::size_t>(8 + i)] = static_cast<unsigned char>(d.low >> (56 - 8 * i));
  }
  return out;
}

std::optional<digest> digest_from(const void* data, int size) noexcept {
  if (data == nullptr || size != 16) return std::nullopt;
  const auto* bytes = static_cast<const unsigned char*>(data);
  digest d;
  for (int i = 0; i < 8; ++i) {
    d.high = (d.high << 8) | bytes[i];
    d.low = (d.low << 8) | bytes[8 + i];
  }
  return d;
}

// ---- query -------------------------------------------------------------------

query::~query() {
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

query& query::bind(int index, const digest& d) { return bind(index, to_bytes(d)); }
query& query::bind(int index, const digest_bytes& bytes) {
  return check(sqlite3_bind_blob(statement_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
}
query& query::bind(int index, std::int64_t value) { return check(sqlite3_bind_int64(statement_, index, value)); }
query& query::bind(int index, double value) { return check(sqlite3_bind_double(statement_, index, value)); }
query& query::bind(int index, std::span<const std::byte> bytes) {
  static constexpr std::byte none{};
  return check(
      sqlite3_bind_blob64(statement_, index, bytes.empty() ? &none : bytes.data(), bytes.size(), SQLITE_STATIC));
}
query& query::bind(int index, std::string_view text) {
  // An empty view may have no data pointer, which SQLite would bind as NULL: '' it is.
  return check(sqlite3_bind_text64(statement_, index, text.data() != nullptr ? text.data() : "", text.size(),
                                   SQLITE_TRANSIENT, SQLITE_UTF8));
}
query& query::bind(int index, std::optional<std::int64_t> value) {
  return value ? bind(index, *value) : bind_null(index);
}
query& query::bind_null(int index) { return check(sqlite3_bind_null(statement_, index)); }

bool query::step() {
  const int rc = sqlite3_step(statement_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(rc);
}

int query::type(int column) const noexcept { return sqlite3_column_type(statement_, column); }
std::int64_t query::integer(int column) const noexcept { return sqlite3_column_int64(statement_, column); }
double query::real(int column) const noexcept { return sqlite3_column_double(statement_, column); }

std::optional<digest> query::digest_at(int column) const noexcept {
  if (type(column) != SQLITE_BLOB) return std::nullopt;
  const void* data = sqlite3_column_blob(statement_, column);
  return digest_from(data, sqlite3_column_bytes(statement_, column));
}

std::span<const std::byte> query::bytes_at(int column) const noexcept {
  const void* data = sqlite3_column_blob(statement_, column);
  const int size = sqlite3_column_bytes(statement_, column);
  if (data == nullptr || size <= 0) return {};
  return {static_cast<const std::byte*>(data), static_cast<std::size_t>(size)};
}

std::optional<digest_bytes> query::token_at(int column) const noexcept {
  auto d = digest_at(column);
  if (!d) return std::nullopt;
  return to_bytes(*d);
}

std::string_view query::text_view(int column) const noexcept {
  const auto* data = sqlite3_column_text(statement_, column);
  if (data == nullptr) return {};
  return {reinterpret_cast<const char*>(data), static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))};
}

query& query::check(int rc) {
  if (rc != SQLITE_OK) fail(rc);
  return *this;
}

void query::fail(int rc) const {
  throw cache_error(
      fmt::format("{}: {} ({}) in \"{}\"", label_, sqlite3_errmsg(db_), sqlite3_errstr(rc), sqlite3_sql(statement_)));
}

// ---- database ----------------------------------------------------------------

void database::open(const std::string& name, int flags, std::chrono::milliseconds busy_timeout) {
  close();
  busy_timeout_ = busy_timeout;
  opened_by_ = ::getpid();
  const int rc = sqlite3_open_v2(name.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    try {
      fail(rc, "cannot open");
    } catch (...) {
      close();
      throw;
    }
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(std::min<std::int64_t>(busy_timeout.count(), 1 << 30)));
}

void database::close() noexcept {
  if (db_ == nullptr) return;
  // A forked child leaves the parent's connection alone: closing it could
  // checkpoint or unlink the parent's WAL (SQLite: no connection across fork).
  if (::getpid() != opened_by_) return;
  for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
  statements_.clear();
  // A long WAL is checkpointed into the database (and deleted) by the last
  // connection to close; a short one is left for the next connection to read.
  if (wal_pages_ > short_wal_pages) sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  sqlite3_close_v2(std::exchange(db_, nullptr));
  wal_pages_ = 0;
}

void database::use_wal() {
  // Switching to WAL needs a moment alone with the file; when several
  // processes open a fresh cache at once, some are told to retry.
  const auto give_up = std::chrono::steady_clock::now() + busy_timeout_;
  for (;;) {
    const int wal = try_exec("PRAGMA journal_mode=WAL");
    if (wal == SQLITE_OK) break;
    if ((wal & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > give_up) fail(wal, "cannot enable WAL");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // NORMAL: a commit is not fsync'ed at once, but a crash loses at most the
  // last commits, never consistency; and a lost row is only a miss, since
  // every blob is fsync'ed before its row is written.
  exec("PRAGMA synchronous=NORMAL");
  // The last connection to close would checkpoint the WAL into the index
  // (two fsyncs) and delete -wal and -shm, which the next run creates
  // again. A short run, such as a no-op rerun that writes one run record,
  // leaves its few pages in the WAL instead, so it costs no disk sync; the
  // next connection reads them back when it opens (SQLite's WAL recovery,
  // which is why a long WAL is still checkpointed on close: see close()).
  // Durability is unchanged: committed frames in the WAL are part of the
  // database for every reader and survive a crash.
  if (const int configured = sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
      configured != SQLITE_OK) {
    fail(configured, "cannot configure the connection");
  }
  // SQLite's automatic checkpoint (every 1,000 pages) unless deferred,
  // plus a note of the WAL's length for the close.
  sqlite3_wal_hook(
      db_,
      [](void* self, sqlite3* connection, const char* name, int pages) {
        auto* me = static_cast<database*>(self);
        me->wal_pages_ = pages;
        if (pages >= (me->deferred_checkpoints_ ? deferred_checkpoint_pages : auto_checkpoint_pages)) {
          sqlite3_wal_checkpoint_v2(connection, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        }
        return SQLITE_OK;
      },
      this);
}

bool database::wal_is_long() const noexcept { return wal_pages_ >= auto_checkpoint_pages; }

int database::checkpoint() noexcept {
  if (db_ == nullptr) return SQLITE_MISUSE;
  return sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

query database::prepare(const char* sql) {
  auto [it, inserted] = statements_.try_emplace(sql, nullptr);
  if (inserted) {
    if (const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &it->second, nullptr);
        rc != SQLITE_OK) {
      statements_.erase(it);
      fail(rc, fmt::format("cannot prepare \"{}\"", sql));
    }
  }
  return query(db_, it->second, label_);
}

bool blob_less(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
  const std::size_t common = std::min(a.size(), b.size());
  const int order = common == 0 ? 0 : std::memcmp(a.data(), b.data(), common);
  return order < 0 || (order == 0 && a.size() < b.size());
}

void database::seek_each(const char* sql, int key_column, std::span<const std::span<const std::byte>> keys,
                         const std::function<void(std::size_t, const query&)>& found) {
  // Rows read past the next wanted key before it is sought directly: a
  // seek costs a few row reads, so a gap wider than this is cheaper jumped.
  constexpr int rows_before_seeking = 4;
  const auto same = [](std::span<const std::byte> a, std::span<const std::byte> b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  };
  std::size_t next = 0;
  while (next < keys.size()) {
    auto q = prepare(sql);
    q.bind(1, keys[next]);
    int unwanted = 0;
    bool seek = false;
    while (!seek && next < keys.size() && q.step()) {
      if (q.type(key_column) != SQLITE_BLOB) continue;  // not a key this can want
      const std::span<const std::byte> row = q.bytes_at(key_column);
      while (next < keys.size() && blob_less(keys[next], row)) ++next;  // no row: passed
      if (next < keys.size() && same(keys[next], row)) {
        while (next < keys.size() && same(keys[next], row)) found(next++, q);
        unwanted = 0;
      } else if (++unwanted > rows_before_seeking) {
        seek = true;
      }
    }
    if (!seek) return;  // every key found or passed, or the rows ran out: no row for the rest
  }
}

void database::exec(const char* sql) {
  if (const int rc = try_exec(sql); rc != SQLITE_OK) fail(rc, sql);
}

int database::try_exec(const char* sql) noexcept { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }

std::int64_t database::changes() const noexcept { return sqlite3_changes(db_); }

bool database::opened_here() const noexcept { return db_ != nullptr && ::getpid() == opened_by_; }

std::int64_t database::last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }

std::int64_t database::user_version() {
  auto q = prepare("PRAGMA user_version");
  return q.step() ? q.integer(0) : 0;
}

bool database::has_column(std::string_view table, std::string_view column) {
  auto q = prepare("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2");
  q.bind(1, table).bind(2, column);
  return q.step() && q.integer(0) > 0;
}

bool database::read_only() const noexcept { return sqlite3_db_readonly(db_, "main") == 1; }

void database::fail(int rc, std::string_view what) const {
  std::string hint;
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    hint = fmt::format("; another process held it for longer than {} ms", busy_timeout_.count());
  } else if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
    hint = kind_ == "cache index" ? "; the index is damaged: delete it (or the whole cache directory) to start afresh"
                                  : fmt::format("; the {} is damaged: move it away to start afresh", kind_);
  }
  throw cache_error(
      fmt::format("{}: {}: {}{}", label_, what, db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc), hint));
}

// ---- transaction -------------------------------------------------------------

transaction::transaction(database& db, transaction_kind kind) : db_(db) {
  // Prepared once (sqlite3_exec would parse them every time).
  db_.prepare(kind == transaction_kind::write ? "BEGIN IMMEDIATE" : "BEGIN").run();
}

transaction::~transaction() {
  // The exception on its way out says what went wrong; a failed ROLLBACK
  // (the transaction already ended by SQLite itself) has nothing to add.
  if (open_) static_cast<void>(db_.try_exec("ROLLBACK"));
}

void transaction::commit() {
  db_.prepare("COMMIT").run();
  open_ = false;
}

// ---- migrations --------------------------------------------------------------

void migrate(database& db, std::span<const migration> migrations) {
  const std::int64_t latest = migrations.empty() ? 0 : migrations.back().version;
  if (db.user_version() == latest) return;
  transaction tx(db, transaction_kind::write);
  const std::int64_t version = db.user_version();  // again, now that no one else can change it
  if (version > latest) {
    throw cache_error(
        fmt::format("{} has schema version {}, newer than this penstock's ({})", db.label(), version, latest));
  }
  for (const migration& m : migrations) {
    if (m.version <= version) continue;
    if (m.sql != nullptr) db.exec(m.sql);
    if (m.apply != nullptr) m.apply(db);
  }
  db.exec(fmt::format("PRAGMA user_version={}", latest).c_str());
  tx.commit();
}

}  // namespace penstock::detail::r1::sqlite
