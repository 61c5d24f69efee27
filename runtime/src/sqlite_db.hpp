// sqlite_db: the cache store's SQLite layer: a connection with a cache of
// prepared statements, a query (bind, step, read, reset), an RAII transaction and numbered migrations.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include <penstock/digest.hpp>

struct sqlite3;
struct sqlite3_stmt;

namespace penstock::detail::r1::sqlite {

// Digests are stored as 16-byte blobs, high word first, so that their hex
// form (digest::hex) and their byte form sort alike.
using digest_bytes = std::array<unsigned char, 16>;
[[nodiscard]] digest_bytes to_bytes(const digest& d) noexcept;
[[nodiscard]] std::optional<digest> digest_from(const void* data, int size) noexcept;
// SQLite's order of blobs: by memcmp, then the shorter first.
[[nodiscard]] bool blob_less(std::span<const std::byte> a, std::span<const std::byte> b) noexcept;

// A prepared statement in use: bound, stepped, and reset (its bindings
// cleared) when it goes out of scope. Every failure is a cache_error naming
// the database (its label: "cache index <file>", "workspace <file>") and the statement.
class query {
 public:
  query(sqlite3* db, sqlite3_stmt* statement, const std::string& label) noexcept
      : db_(db), statement_(statement), label_(label) {}
  query(const query&) = delete;
  query& operator=(const query&) = delete;
  ~query();

  query& bind(int index, const digest& d);
  query& bind(int index, const digest_bytes& bytes);
  query& bind(int index, std::int64_t value);
  query& bind(int index, double value);
  // Bytes that outlive the statement's use (the query resets it), so not copied.
  query& bind(int index, std::span<const std::byte> bytes);
  query& bind(int index, std::string_view text);
  query& bind(int index, std::optional<std::int64_t> value);  // NULL if empty
  query& bind_null(int index);

  // True while there is a row.
  bool step();
  void run() {
    while (step()) {
    }
  }

  [[nodiscard]] int type(int column) const noexcept;  // SQLITE_INTEGER, SQLITE_BLOB, ...
  [[nodiscard]] std::int64_t integer(int column) const noexcept;
  [[nodiscard]] double real(int column) const noexcept;
  [[nodiscard]] std::optional<digest> digest_at(int column) const noexcept;
  // Valid until the next step or reset of the statement.
  [[nodiscard]] std::span<const std::byte> bytes_at(int column) const noexcept;
  [[nodiscard]] std::optional<digest_bytes> token_at(int column) const noexcept;
  // Valid until the next step or reset of the statement.
  [[nodiscard]] std::string_view text_view(int column) const noexcept;
  [[nodiscard]] std::string text(int column) const { return std::string(text_view(column)); }

 private:
  query& check(int rc);
  [[noreturn]] void fail(int rc) const;

  sqlite3* db_;
  sqlite3_stmt* statement_;
  const std::string& label_;
};

// One connection to one database file. Statements are prepared once and
// kept, keyed by the address of their SQL text (a string literal).
// Not usable across fork(): in a child, the destructor leaves the parent's
// connection alone (closing it could checkpoint or unlink the parent's WAL).
class database {
 public:
  // `kind` and `file` name the database in messages ("cache index /x/index.db").
  explicit database(std::filesystem::path file, std::string_view kind = "cache index")
      : file_(std::move(file)), kind_(kind), label_(std::string(kind) + " " + file_.string()) {}
  database(const database&) = delete;
  database& operator=(const database&) = delete;
  ~database() { close(); }

  // sqlite3_open_v2 of `name` (the file's path, or with SQLITE_OPEN_URI a
  // file: URI), with extended result codes and the busy timeout. cache_error if it fails.
  void open(const std::string& name, int flags, std::chrono::milliseconds busy_timeout);
  // Finalizes the statements and closes the connection; nothing if not open.
  void close() noexcept;
  [[nodiscard]] bool is_open() const noexcept { return db_ != nullptr; }
  // Opened by this process (not inherited across fork()).
  [[nodiscard]] bool opened_here() const noexcept;

  // WAL journal (retrying while another connection switches it), synchronous
  // NORMAL, SQLite's automatic checkpoint, and no checkpoint on close unless
  // the WAL is long (see the .cpp).
  void use_wal();
  // From now on, the WAL hook no longer checkpoints after a commit that
  // leaves a long WAL (until it is twice as long, see the .cpp): the owner
  // checkpoints (see wal_is_long) on a connection of its own, off the
  // committing thread (a checkpoint writes the WAL's pages into the file
  // and syncs both: milliseconds).
  void defer_checkpoints() noexcept { deferred_checkpoints_ = true; }
  // The WAL, after this connection's last commit, is as long as SQLite
  // would checkpoint it (1,000 pages).
  [[nodiscard]] bool wal_is_long() const noexcept;
  // A passive checkpoint of the WAL (whatever no reader still needs),
  // through this connection; SQLite's result code.
  int checkpoint() noexcept;

  [[nodiscard]] query prepare(const char* sql);
  // The rows of many keys with one statement: `sql` selects the rows whose
  // key (a blob in column `key_column`) is >= ?1, ordered by it; `keys` are
  // the wanted keys sorted as SQLite sorts blobs (see blob_less). The rows
  // are read as a merge of the two orders, and the statement is sought
  // again (rebound to the next wanted key) only after a few rows no one
  // wants: one seek for a run of wanted keys that are neighbours in the
  // index instead of one per key, and at most a few rows read in vain per
  // key where they are far apart. `found(k, row)` for each wanted key k
  // that has a row (once per key; the row's columns are valid in the call).
  void seek_each(const char* sql, int key_column, std::span<const std::span<const std::byte>> keys,
                 const std::function<void(std::size_t, const query&)>& found);
  void exec(const char* sql);
  // sqlite3_exec's result code, for the callers that decide what an error means.
  [[nodiscard]] int try_exec(const char* sql) noexcept;
  // Rows changed by the last statement.
  [[nodiscard]] std::int64_t changes() const noexcept;
  // The rowid of the last row this connection inserted.
  [[nodiscard]] std::int64_t last_insert_rowid() const noexcept;
  [[nodiscard]] std::int64_t user_version();
  [[nodiscard]] bool has_column(std::string_view table, std::string_view column);
  // Whether the connection cannot write the main database (sqlite3_db_readonly).
  [[nodiscard]] bool read_only() const noexcept;
  // A cache_error naming the file, with a hint for a busy or damaged index.
  [[noreturn]] void fail(int rc, std::string_view what) const;
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
  // "cache index <file>": how messages name this database.
  [[nodiscard]] const std::string& label() const noexcept { return label_; }
  [[nodiscard]] std::string_view kind() const noexcept { return kind_; }

 private:
  std::filesystem::path file_;
  std::string_view kind_;
  std::string label_;
  sqlite3* db_ = nullptr;
  pid_t opened_by_ = 0;
  std::chrono::milliseconds busy_timeout_{};
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
  int wal_pages_ = 0;  // pages in the WAL after this connection's last commit
  bool deferred_checkpoints_ = false;
};

enum class transaction_kind : std::uint8_t {
  read,   // BEGIN: one snapshot for several reads
  write,  // BEGIN IMMEDIATE: the write lock at once (no deadlock upgrading a read)
};

// BEGIN ... COMMIT on commit(); ROLLBACK by the destructor otherwise (an
// exception on the way out), so that no error path leaves a transaction open.
class transaction {
 public:
  transaction(database& db, transaction_kind kind);
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;
  ~transaction();
  void commit();

 private:
  database& db_;
  bool open_ = true;
};

// One step of a schema: the database's user_version once it is applied.
struct migration {
  int version;
  const char* sql = nullptr;           // a script run first, or null
  void (*apply)(database&) = nullptr;  // then this, or null
};

// Applies every migration above the database's user_version, in order, in
// one write transaction, and sets user_version to the last one's. A database
// already there costs one read; one of a newer version is refused (cache_error) untouched.
void migrate(database& db, std::span<const migration> migrations);

}  // namespace penstock::detail::r1::sqlite
