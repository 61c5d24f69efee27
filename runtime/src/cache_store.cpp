// cache_store: blobs as files named by digest, an SQLite index (WAL) of
// key -> digest, leases and in-use marks. The rules it keeps are listed in
// cache_store.hpp; the comments here say how each step keeps them.
#include "cache_store.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <istream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <streambuf>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

using sys_clock = std::chrono::system_clock;

// Reads and writes go in pieces of this size so that each piece is hashed
// while it is still in the CPU cache.
constexpr std::size_t io_chunk = std::size_t{1} << 20;
// A large value: put() hashes it piece by piece as it writes it, get() on a
// second thread while it reads it.
constexpr std::size_t large_value_min = std::size_t{8} << 20;
// get() reads a destination at least this large through a realigning buffer
// when its alignment differs from the file offset's.
constexpr std::size_t realign_min = std::size_t{64} << 10;
// Linux transfers at most this much in one read() / write() call.
constexpr std::size_t max_io = 0x7ffff000;
// A temporary file nobody touched for this long is abandoned, whoever wrote it.
constexpr auto abandoned_after = std::chrono::hours(24);
// 1: entries, leases, in_use. 2: adds runs and steps (run and step records);
// the tables of version 1 are unchanged. 3: adds entries.inline_value (NULL:
// the value is in a blob file; else its bytes). 4: adds leases.started and
// in_use.started, the owner process's start time (NULL in older rows), so a
// row left by a dead process is not kept alive by a new process given the
// same pid. See schema_sql and open().
constexpr int schema_version = 4;
// SQLite's default automatic checkpoint: when a commit leaves this many pages in the WAL.
constexpr int auto_checkpoint_pages = 1000;
// A WAL of at most this many pages (4 KiB each) is left in place when the
// index is closed (see cache_store::state::open).
constexpr int short_wal_pages = 128;
// The streaming put's first buffer; it grows as the value does.
constexpr std::size_t first_buffer = 4096;

std::string errno_text(int error) { return std::generic_category().message(error); }

using digest_bytes = std::array<unsigned char, 16>;

// Digests are stored as 16 bytes, high word first, so that their hex form
// (digest::hex) and their byte form sort alike.
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

struct digest_hash {
  std::size_t operator()(const digest& d) const noexcept {
    return static_cast<std::size_t>(d.low ^ (d.high * 0x9e3779b97f4a7c15ULL));
  }
};
using digest_set = std::unordered_set<digest, digest_hash>;

std::int64_t to_ns(sys_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
sys_clock::time_point from_ns(std::int64_t ns) noexcept {
  return sys_clock::time_point(std::chrono::duration_cast<sys_clock::duration>(std::chrono::nanoseconds(ns)));
}
// now + ttl without overflow.
std::int64_t expiry(std::int64_t now, std::chrono::nanoseconds ttl) noexcept {
  const std::int64_t t = std::max<std::int64_t>(ttl.count(), 0);
  return now > std::numeric_limits<std::int64_t>::max() - t ? std::numeric_limits<std::int64_t>::max() : now + t;
}

class unique_fd {
 public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // close() with its error reported: for a file just written, a failed
  // close can mean lost data.
  void close(const fs::path& file) {
    const int fd = std::exchange(fd_, -1);
    if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) {
      throw cache_error(fmt::format("cannot close {}: {}", file.string(), errno_text(errno)));
    }
  }

 private:
  int fd_;
};

void write_all(int fd, const std::byte* data, std::size_t size, const fs::path& file) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, std::min(size, max_io));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw cache_error(fmt::format("cannot write {}: {}", file.string(), errno_text(errno)));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void sync_file(int fd, const fs::path& file) {
  if (::fsync(fd) != 0) throw cache_error(fmt::format("cannot fsync {}: {}", file.string(), errno_text(errno)));
}

void sync_directory(const fs::path& dir) {
  const unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw cache_error(fmt::format("cannot open directory {}: {}", dir.string(), errno_text(errno)));
  sync_file(fd.get(), dir);
}

// mkdir that tolerates an existing directory; a new one is made durable
// before a blob is renamed into it.
void ensure_directory(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) {
    sync_directory(dir.parent_path());
  } else if (errno == ENOENT) {  // blobs/ itself was removed behind our back
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw cache_error(fmt::format("cannot create directory {}: {}", dir.string(), ec.message()));
    sync_directory(dir.parent_path());
  } else if (errno != EEXIST) {
    throw cache_error(fmt::format("cannot create directory {}: {}", dir.string(), errno_text(errno)));
  }
}

// /proc/<pid>/stat after the command name: "S ppid ..." (field 3 onwards);
// empty if it cannot be read (no such process, or no /proc).
std::string process_stat(std::int64_t pid) {
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat_file, text)) return {};
  const auto paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return {};
  return text.substr(paren + 2);
}

// When the process started (field 22 of /proc/<pid>/stat, clock ticks since
// boot): with the pid, it tells a process from a later one that was given
// the same pid. nullopt where it cannot be read.
std::optional<std::int64_t> process_start_time(std::int64_t pid) {
  std::istringstream fields(process_stat(pid));
  std::string field;
  for (int i = 3; i <= 22; ++i)
    if (!(fields >> field)) return std::nullopt;
  try {
    return std::stoll(field);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// True unless the process certainly does not exist: kill(pid, 0) finds no
// such process, or it is a zombie (a child killed but not reaped yet still
// answers kill), or it started at another time than `started` (the pid was
// given to a new process after the owner died).
bool process_alive(std::int64_t pid, std::optional<std::int64_t> started) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  const std::string stat = process_stat(pid);
  if (stat.empty()) return true;  // no /proc: trust kill()
  if (stat[0] == 'Z' || stat[0] == 'X') return false;
  if (!started) return true;  // a row written before schema 4
  const auto now_started = process_start_time(pid);
  return !now_started || *now_started == *started;
}

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return "unknown-host";
  return name.data();
}

digest_bytes random_token() {
  digest_bytes token{};
  std::size_t got = 0;
  while (got < token.size()) {
    const ssize_t n = ::getrandom(token.data() + got, token.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::random_device device;  // getrandom unavailable: fall back
      for (auto& b : token) b = static_cast<unsigned char>(device());
      return token;
    }
    got += static_cast<std::size_t>(n);
  }
  return token;
}

// Hashes the bytes a reader fills in, in order, as they become available:
// on a second thread for a large value (chunk k is hashed while chunk k + 1
// is read), on the caller's otherwise.
class trailing_hasher {
 public:
  // Continues `so_far` (the digest of what came before `data`).
  trailing_hasher(const std::byte* data, bool second_thread, hasher so_far = {})
      : data_(data), hash_(std::move(so_far)) {
    if (second_thread) worker_ = std::thread([this] { run(); });
  }
  trailing_hasher(const trailing_hasher&) = delete;
  trailing_hasher& operator=(const trailing_hasher&) = delete;
  ~trailing_hasher() { stop(); }

  // The first `filled` bytes are in place (never fewer than before).
  void available(std::size_t filled) {
    if (!worker_.joinable()) {
      hash_.update(data_ + hashed_, filled - hashed_);
      hashed_ = filled;
      return;
    }
    progress_.store(filled, std::memory_order_release);
    progress_.notify_one();
  }
  // The digest of every byte made available.
  [[nodiscard]] digest finish() {
    stop();
    return hash_.finish();
  }
  // The hasher, having hashed every byte made available (to go on with the next part).
  [[nodiscard]] hasher release() {
    stop();
    return hash_;
  }

 private:
  static constexpr std::size_t done_bit = std::size_t{1} << 63;

  void stop() {
    if (!worker_.joinable()) return;
    progress_.fetch_or(done_bit, std::memory_order_release);
    progress_.notify_one();
    worker_.join();
  }
  void run() {
    for (;;) {
      const std::size_t seen = progress_.load(std::memory_order_acquire);
      if (const std::size_t ready = seen & ~done_bit; ready > hashed_) {
        hash_.update(data_ + hashed_, ready - hashed_);
        hashed_ = ready;
        continue;
      }
      if ((seen & done_bit) != 0) return;
      progress_.wait(seen, std::memory_order_acquire);
    }
  }

  const std::byte* data_;
  hasher hash_;
  std::size_t hashed_ = 0;
  std::atomic<std::size_t> progress_{0};
  std::thread worker_;  // last: starts once the rest is initialized
};

// A buffer of io_chunk bytes that starts, for each read, at the same
// address modulo the page size as the file offset being read (allocated on
// first use).
class realigning_buffer {
 public:
  [[nodiscard]] std::byte* at(std::size_t file_offset) {
    if (!base_) base_.reset(static_cast<std::byte*>(std::aligned_alloc(page, io_chunk + page)));
    if (!base_) throw std::bad_alloc();
    return base_.get() + file_offset % page;
  }

 private:
  static constexpr std::size_t page = 4096;
  struct release {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<std::byte, release> base_;
};

// Reads an in-memory buffer as a stream, for load().
class memory_streambuf final : public std::streambuf {
 public:
  explicit memory_streambuf(std::span<std::byte> bytes) {
    auto* begin = reinterpret_cast<char*>(bytes.data());
    setg(begin, begin, begin + bytes.size());
  }
};

// Collects a streamed value: in memory while it fits in cache_inline_max
// bytes (the buffer starts small and grows), then, once it outgrows that, in
// a temporary file through a buffer of io_chunk bytes, hashing every byte on
// its way out. Large writes (a cereal vector of floats is one sputn) bypass
// the buffer. Errors are kept, not thrown: std::ostream would swallow them.
// The temporary file, if any, is removed by the destructor unless release()d.
class staging_streambuf final : public std::streambuf {
 public:
  explicit staging_streambuf(std::function<fs::path()> temporary_path) : temporary_path_(std::move(temporary_path)) {}
  staging_streambuf(const staging_streambuf&) = delete;
  staging_streambuf& operator=(const staging_streambuf&) = delete;
  ~staging_streambuf() override {
    fd_ = unique_fd();
    if (!temp_.empty()) ::unlink(temp_.c_str());
  }

  [[nodiscard]] int error() const noexcept { return error_; }
  [[nodiscard]] bool spilled() const noexcept { return !temp_.empty(); }
  [[nodiscard]] const fs::path& temporary() const noexcept { return temp_; }
  // The value, while it has not spilled to a file.
  [[nodiscard]] std::span<const std::byte> memory() const noexcept {
    return {reinterpret_cast<const std::byte*>(pbase()), static_cast<std::size_t>(pptr() - pbase())};
  }
  // After a flush of a spilled value: its size and digest.
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] digest finish() const noexcept { return hash_.finish(); }
  // fsyncs and closes the temporary file, and hands it over to the caller.
  fs::path complete() {
    sync_file(fd_.get(), temp_);
    fd_.close(temp_);
    return std::exchange(temp_, fs::path());
  }

 protected:
  int sync() override { return !spilled() || drain() ? 0 : -1; }
  int_type overflow(int_type ch) override {
    if (traits_type::eq_int_type(ch, traits_type::eof())) return sync() == 0 ? traits_type::not_eof(ch) : ch;
    const char c = traits_type::to_char_type(ch);
    return xsputn(&c, 1) == 1 ? ch : traits_type::eof();
  }
  std::streamsize xsputn(const char* data, std::streamsize n) override {
    if (n <= 0) return 0;
    const auto size = static_cast<std::size_t>(n);
    const auto room = static_cast<std::size_t>(epptr() - pptr());
    if (size <= room) {
      std::memcpy(pptr(), data, size);
      pbump(static_cast<int>(size));
      return n;
    }
    if (!spilled()) {
      const auto used = static_cast<std::size_t>(pptr() - pbase());
      if (used + size <= cache_inline_max) {
        grow(used + size);
        std::memcpy(pptr(), data, size);
        pbump(static_cast<int>(size));
        return n;
      }
      if (!spill()) return 0;
    }
    const auto file_room = static_cast<std::size_t>(epptr() - pptr());
    if (size <= file_room) {
      std::memcpy(pptr(), data, size);
      pbump(static_cast<int>(size));
    } else if (size < io_chunk) {  // top the buffer up, write it, keep the rest
      std::memcpy(pptr(), data, file_room);
      pbump(static_cast<int>(file_room));
      if (!drain()) return 0;
      std::memcpy(pptr(), data + file_room, size - file_room);
      pbump(static_cast<int>(size - file_room));
    } else if (!drain() || !emit(data, size)) {
      return 0;
    }
    return n;
  }

 private:
  // Makes the memory buffer hold at least `needed` bytes (<= cache_inline_max).
  void grow(std::size_t needed) {
    std::size_t capacity = std::max(first_buffer, static_cast<std::size_t>(epptr() - pbase()));
    while (capacity < needed) capacity *= 2;
    capacity = std::min(capacity, cache_inline_max);
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    const auto used = static_cast<std::size_t>(pptr() - pbase());
    if (used > 0) std::memcpy(bigger.get(), pbase(), used);
    buffer_ = std::move(bigger);
    setp(buffer_.get(), buffer_.get() + capacity);
    pbump(static_cast<int>(used));
  }
  // The value outgrew memory: opens the temporary file, writes what was
  // collected so far, and goes on with a file buffer.
  bool spill() {
    fs::path temp = temporary_path_();
    fd_ = unique_fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (!fd_) {
      error_ = errno;
      return false;
    }
    temp_ = std::move(temp);
    auto file_buffer = std::make_unique_for_overwrite<char[]>(io_chunk);
    const bool written = emit(pbase(), static_cast<std::size_t>(pptr() - pbase()));
    buffer_ = std::move(file_buffer);
    setp(buffer_.get(), buffer_.get() + io_chunk);
    return written;
  }
  bool drain() {
    const auto pending = static_cast<std::size_t>(pptr() - pbase());
    setp(pbase(), epptr());
    return emit(pbase(), pending);
  }
  bool emit(const char* data, std::size_t size) {
    if (error_ != 0) return false;
    while (size > 0) {
      const std::size_t piece = std::min(size, io_chunk);
      hash_.update(data, piece);
      std::size_t done = 0;
      while (done < piece) {
        const ssize_t w = ::write(fd_.get(), data + done, piece - done);
        if (w < 0) {
          if (errno == EINTR) continue;
          error_ = errno;
          return false;
        }
        done += static_cast<std::size_t>(w);
      }
      size_ += piece;
      data += piece;
      size -= piece;
    }
    return true;
  }

  std::function<fs::path()> temporary_path_;
  std::unique_ptr<char[]> buffer_;
  fs::path temp_;
  unique_fd fd_;
  hasher hash_;
  std::uint64_t size_ = 0;
  int error_ = 0;
};

// The index schema. Digests and keys are 16-byte blobs; times are
// nanoseconds since the Unix epoch. in_use holds the marks of readers and
// writers (see cache_store.hpp); leases the right to compute a key; runs and
// steps the run and step records (counts are stored as 64-bit integers, bit
// for bit). Every table is created IF NOT EXISTS, so running this on an index
// of any older version (or on a new, empty one) brings it to schema_version,
// in open()'s transaction: that is the migration, together with the steps
// open() takes for changes to existing tables, keyed on the old user_version
// (3: entries.inline_value is added to an older entries table; 4:
// leases.started and in_use.started to older tables).
constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS entries(
  key BLOB PRIMARY KEY,
  digest BLOB NOT NULL,
  size INTEGER NOT NULL,
  type BLOB NOT NULL,
  run_id TEXT NOT NULL,
  created INTEGER NOT NULL,
  last_used INTEGER NOT NULL,
  inline_value BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_digest ON entries(digest);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries(last_used);
CREATE TABLE IF NOT EXISTS leases(
  key BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL,
  started INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS in_use(
  digest BLOB NOT NULL,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL,
  started INTEGER,
  PRIMARY KEY(digest, owner, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs(
  seq INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL UNIQUE,
  pipeline TEXT NOT NULL,
  started INTEGER NOT NULL,
  wall INTEGER NOT NULL,
  steps INTEGER NOT NULL,
  hits INTEGER NOT NULL,
  computed INTEGER NOT NULL,
  reported_misses INTEGER NOT NULL,
  failed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs(pipeline, started);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs(started);
CREATE TABLE IF NOT EXISTS steps(
  pipeline TEXT NOT NULL,
  step TEXT NOT NULL,
  key BLOB NOT NULL,
  components TEXT NOT NULL,
  run_id TEXT NOT NULL,
  recorded INTEGER NOT NULL,
  PRIMARY KEY(pipeline, step)
) WITHOUT ROWID;
)sql";

// Column 7 says where the value is ('null': a blob file, 'blob': inline)
// without reading it; get() reads it as column 8.
constexpr const char* select_entry_sql =
    "SELECT key, digest, size, type, run_id, created, last_used, typeof(inline_value) FROM entries WHERE key = ?1";
// What a planner needs (lookup of a batch): no type, run id or creation time.
constexpr const char* select_planned_entry_sql =
    "SELECT digest, size, last_used, typeof(inline_value) FROM entries WHERE key = ?1";
constexpr const char* select_entry_value_sql =
    "SELECT key, digest, size, type, run_id, created, last_used, typeof(inline_value), inline_value FROM entries "
    "WHERE key = ?1";
constexpr const char* insert_entry_sql =
    "INSERT OR REPLACE INTO entries(key, digest, size, type, run_id, created, last_used, inline_value) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)";
// Whether table ?1 has a column named ?2.
constexpr const char* has_column_sql = "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2";
constexpr const char* add_inline_column_sql = "ALTER TABLE entries ADD COLUMN inline_value BLOB";
constexpr const char* add_lease_started_column_sql = "ALTER TABLE leases ADD COLUMN started INTEGER";
constexpr const char* add_mark_started_column_sql = "ALTER TABLE in_use ADD COLUMN started INTEGER";
// A bad inline value goes with its row only if the row still holds it.
constexpr const char* delete_inline_entry_sql =
    "DELETE FROM entries WHERE key = ?1 AND digest = ?2 AND inline_value = ?3";
constexpr const char* touch_entry_sql = "UPDATE entries SET last_used = ?2 WHERE key = ?1";
constexpr const char* touch_stale_entry_sql =
    "UPDATE entries SET last_used = ?2 WHERE key = ?1 AND (typeof(last_used) != 'integer' OR last_used < ?3)";
constexpr const char* delete_entry_sql = "DELETE FROM entries WHERE key = ?1";
constexpr const char* delete_entries_of_digest_sql = "DELETE FROM entries WHERE digest = ?1 AND inline_value IS NULL";
constexpr const char* insert_mark_sql =
    "INSERT OR REPLACE INTO in_use(digest, owner, id, pid, host, expires, started) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* delete_mark_sql = "DELETE FROM in_use WHERE digest = ?1 AND owner = ?2 AND id = ?3";
constexpr const char* select_marks_sql = "SELECT digest, owner, id, pid, host, expires, started FROM in_use";
constexpr const char* select_lease_sql = "SELECT owner, id, pid, host, expires, started FROM leases WHERE key = ?1";
constexpr const char* insert_lease_sql =
    "INSERT OR REPLACE INTO leases(key, owner, id, pid, host, expires, started) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* delete_lease_sql = "DELETE FROM leases WHERE key = ?1 AND owner = ?2 AND id = ?3";
constexpr const char* renew_lease_sql = "UPDATE leases SET expires = ?4 WHERE key = ?1 AND owner = ?2 AND id = ?3";
constexpr const char* select_leases_sql = "SELECT key, owner, id, pid, host, expires, started FROM leases";
constexpr const char* select_lru_sql =
    "SELECT key, digest, size, last_used, inline_value IS NOT NULL FROM entries ORDER BY last_used, created";
constexpr const char* select_digests_sql = "SELECT DISTINCT digest FROM entries WHERE inline_value IS NULL";
// A row any of whose columns has the wrong type or length can only be
// removed: nothing in it can be trusted.
constexpr const char* delete_bad_rows_sql =
    "DELETE FROM entries WHERE typeof(key) != 'blob' OR length(key) != 16 OR typeof(digest) != 'blob' "
    "OR length(digest) != 16 OR typeof(size) != 'integer' OR size < 0 OR typeof(type) != 'blob' "
    "OR length(type) != 16 OR typeof(run_id) != 'text' OR typeof(created) != 'integer' "
    "OR typeof(last_used) != 'integer' OR typeof(inline_value) NOT IN ('null', 'blob')";
constexpr const char* count_entries_sql = "SELECT count(*) FROM entries";
constexpr const char* count_blobs_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM (SELECT digest, max(size) AS size FROM entries "
    "WHERE typeof(size) = 'integer' AND inline_value IS NULL GROUP BY digest)";
constexpr const char* count_inline_sql =
    "SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE typeof(size) = 'integer' AND inline_value IS NOT NULL";
constexpr const char* count_leases_sql = "SELECT count(*) FROM leases";

// Run records: INSERT OR REPLACE keeps one row per run_id. The prune keeps the
// ?1 latest runs overall and the latest run of each pipeline (rows whose
// start time is not an integer count as the oldest).
constexpr const char* insert_run_sql =
    "INSERT OR REPLACE INTO runs(run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr const char* prune_runs_sql =
    "DELETE FROM runs WHERE seq IN (SELECT seq FROM (SELECT seq, "
    "row_number() OVER (ORDER BY typeof(started) = 'integer' DESC, started DESC, seq DESC) AS overall, "
    "row_number() OVER (PARTITION BY pipeline ORDER BY typeof(started) = 'integer' DESC, started DESC, seq DESC) "
    "AS within FROM runs) WHERE overall > ?1 AND within > 1)";
constexpr const char* select_last_run_sql =
    "SELECT run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed FROM runs "
    "WHERE typeof(started) = 'integer' ORDER BY started DESC, seq DESC";
constexpr const char* select_last_run_of_sql =
    "SELECT run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed FROM runs "
    "WHERE pipeline = ?1 AND typeof(started) = 'integer' ORDER BY started DESC, seq DESC";
// Step records: the stored row stays when it is newer than the one offered
// (or replaced when its time is unreadable).
constexpr const char* upsert_step_sql =
    "INSERT INTO steps(pipeline, step, key, components, run_id, recorded) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT(pipeline, step) DO UPDATE SET key = excluded.key, components = excluded.components, "
    "run_id = excluded.run_id, recorded = excluded.recorded "
    "WHERE excluded.recorded >= steps.recorded OR typeof(steps.recorded) != 'integer'";
constexpr const char* select_steps_sql =
    "SELECT step, key, components, run_id, recorded FROM steps WHERE pipeline = ?1 ORDER BY step";

// A prepared statement in use: bound, stepped, and reset when it goes out of scope.
class query {
 public:
  query(sqlite3* db, sqlite3_stmt* statement, const fs::path& file) noexcept
      : db_(db), statement_(statement), file_(file) {}
  query(const query&) = delete;
  query& operator=(const query&) = delete;
  ~query() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }

  query& bind(int index, const digest& d) {
    const auto bytes = to_bytes(d);
    return check(sqlite3_bind_blob(statement_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
  }
  query& bind(int index, const digest_bytes& bytes) {
    return check(sqlite3_bind_blob(statement_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
  }
  query& bind(int index, std::int64_t value) { return check(sqlite3_bind_int64(statement_, index, value)); }
  // Bytes that outlive the statement's use (the query resets it), so not copied.
  query& bind(int index, std::span<const std::byte> bytes) {
    static constexpr std::byte none{};
    return check(
        sqlite3_bind_blob64(statement_, index, bytes.empty() ? &none : bytes.data(), bytes.size(), SQLITE_STATIC));
  }
  query& bind_null(int index) { return check(sqlite3_bind_null(statement_, index)); }
  query& bind(int index, std::string_view text) {
    return check(sqlite3_bind_text64(statement_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }

  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(rc);
  }
  void run() {
    while (step()) {
    }
  }

  [[nodiscard]] int type(int column) const noexcept { return sqlite3_column_type(statement_, column); }
  [[nodiscard]] std::int64_t integer(int column) const noexcept { return sqlite3_column_int64(statement_, column); }
  [[nodiscard]] std::optional<digest> digest_at(int column) const noexcept {
    if (type(column) != SQLITE_BLOB) return std::nullopt;
    const void* data = sqlite3_column_blob(statement_, column);
    return digest_from(data, sqlite3_column_bytes(statement_, column));
  }
  [[nodiscard]] std::span<const std::byte> bytes_at(int column) const noexcept {
    const void* data = sqlite3_column_blob(statement_, column);
    const int size = sqlite3_column_bytes(statement_, column);
    if (data == nullptr || size <= 0) return {};
    return {static_cast<const std::byte*>(data), static_cast<std::size_t>(size)};
  }
  [[nodiscard]] std::optional<digest_bytes> token_at(int column) const noexcept {
    auto d = digest_at(column);
    if (!d) return std::nullopt;
    return to_bytes(*d);
  }
  // Valid until the next step or reset of the statement.
  [[nodiscard]] std::string_view text_view(int column) const noexcept {
    const auto* data = sqlite3_column_text(statement_, column);
    if (data == nullptr) return {};
    return {reinterpret_cast<const char*>(data), static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))};
  }
  [[nodiscard]] std::string text(int column) const {
    const auto* data = sqlite3_column_text(statement_, column);
    if (data == nullptr) return {};
    return {reinterpret_cast<const char*>(data), static_cast<std::size_t>(sqlite3_column_bytes(statement_, column))};
  }

 private:
  query& check(int rc) {
    if (rc != SQLITE_OK) fail(rc);
    return *this;
  }
  [[noreturn]] void fail(int rc) const {
    throw cache_error(fmt::format("cache index {}: {} ({}) in \"{}\"", file_.string(), sqlite3_errmsg(db_),
                                  sqlite3_errstr(rc), sqlite3_sql(statement_)));
  }

  sqlite3* db_;
  sqlite3_stmt* statement_;
  const fs::path& file_;
};

struct owner_row {
  digest_bytes owner{};
  std::int64_t id = 0;
  std::int64_t pid = 0;
  std::string host;
  std::int64_t expires = 0;
  std::optional<std::int64_t> started;  // the owner process's start time (schema 4; NULL before)
};

// Reads owner, id, pid, host, expires, started from columns first.. first+5.
std::optional<owner_row> read_owner(const query& q, int first) {
  auto owner = q.token_at(first);
  if (!owner || q.type(first + 1) != SQLITE_INTEGER || q.type(first + 2) != SQLITE_INTEGER ||
      q.type(first + 3) != SQLITE_TEXT || q.type(first + 4) != SQLITE_INTEGER) {
    return std::nullopt;
  }
  std::optional<std::int64_t> started;
  if (q.type(first + 5) == SQLITE_INTEGER) started = q.integer(first + 5);
  return owner_row{*owner, q.integer(first + 1), q.integer(first + 2), q.text(first + 3), q.integer(first + 4),
                   started};
}

// Parses the columns of select_entry_sql (the first 8 of
// select_entry_value_sql); on failure says which column is bad.
std::optional<cache_entry> read_entry(const query& q, std::string& why) {
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
std::optional<cache_entry> read_planned_entry(const query& q, const digest& key, std::string& why) {
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

// Parses the columns of select_last_run_sql; nullopt if any has the wrong type.
std::optional<run_record> read_run(const query& q) {
  if (q.type(0) != SQLITE_TEXT || q.type(1) != SQLITE_TEXT) return std::nullopt;
  for (int column = 2; column <= 8; ++column) {
    if (q.type(column) != SQLITE_INTEGER) return std::nullopt;
  }
  run_record r;
  r.run_id = q.text(0);
  r.pipeline = q.text(1);
  r.started = from_ns(q.integer(2));
  r.wall = std::chrono::nanoseconds(q.integer(3));
  r.steps = static_cast<std::uint64_t>(q.integer(4));
  r.hits = static_cast<std::uint64_t>(q.integer(5));
  r.computed = static_cast<std::uint64_t>(q.integer(6));
  r.reported_misses = static_cast<std::uint64_t>(q.integer(7));
  r.failed = static_cast<std::uint64_t>(q.integer(8));
  return r;
}

// Parses the columns of select_steps_sql; nullopt if any has the wrong type.
std::optional<step_record> read_step(const query& q, std::string_view pipeline) {
  const auto key = q.digest_at(1);
  if (q.type(0) != SQLITE_TEXT || !key || q.type(2) != SQLITE_TEXT || q.type(3) != SQLITE_TEXT ||
      q.type(4) != SQLITE_INTEGER) {
    return std::nullopt;
  }
  step_record r;
  r.pipeline = pipeline;
  r.step = q.text(0);
  r.key = *key;
  r.components = q.text(2);
  r.run_id = q.text(3);
  r.when = from_ns(q.integer(4));
  return r;
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

struct cache_store::state {
  fs::path directory;
  fs::path blobs;
  fs::path index_file;
  cache_store_options options;
  // Who we are, in leases and marks.
  pid_t pid = ::getpid();
  std::optional<std::int64_t> started = process_start_time(pid);
  std::string host = host_name();
  std::string host_tag = hasher().update(host).finish().hex().substr(0, 8);
  digest_bytes token = random_token();

  std::mutex mutex;  // guards everything below
  sqlite3* db = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> statements;
  std::int64_t next_id = 1;
  int wal_pages = 0;  // pages in the WAL after this connection's last commit
  std::int64_t last_stamp = 0;
  std::minstd_rand jitter{std::random_device{}()};

  state(const fs::path& dir, cache_store_options opts)
      : directory(fs::absolute(dir)),
        blobs(directory / "blobs"),
        index_file(directory / "index.sqlite"),
        options(std::move(opts)) {}
  state(const state&) = delete;
  state& operator=(const state&) = delete;
  ~state() {
    // A forked child leaves the parent's connection alone: closing it could
    // checkpoint or unlink the parent's WAL (SQLite: no connection across fork).
    if (::getpid() != pid) return;
    for (auto& [sql, statement] : statements) sqlite3_finalize(statement);
    // A long WAL is checkpointed into the index (and deleted) by the last
    // connection to close; a short one is left for the next run to read.
    if (db != nullptr && wal_pages > short_wal_pages) {
      sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
    }
    sqlite3_close_v2(db);
  }

  [[nodiscard]] std::unique_lock<std::mutex> lock() {
    if (::getpid() != pid) {
      throw cache_error(fmt::format(
          "the cache store on {} was opened in process {} and used in its forked child {}; open a new one there",
          directory.string(), pid, ::getpid()));
    }
    return std::unique_lock(mutex);
  }

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

  [[noreturn]] void fail(int rc, std::string_view what) const {
    std::string hint;
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      hint = fmt::format("; another process held it for longer than {} ms", options.busy_timeout.count());
    } else if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
      hint = "; the index is damaged: delete it (or the whole cache directory) to start afresh";
    }
    throw cache_error(fmt::format("cache index {}: {}: {}{}", index_file.string(), what,
                                  db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc), hint));
  }

  void exec(const char* sql) {
    if (const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr); rc != SQLITE_OK) fail(rc, sql);
  }
  // BEGIN, BEGIN IMMEDIATE or COMMIT, prepared once (sqlite3_exec would parse it every time).
  void transaction(const char* sql) { prepare(sql).run(); }

  query prepare(const char* sql) {
    auto [it, inserted] = statements.try_emplace(sql, nullptr);
    if (inserted) {
      if (const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &it->second, nullptr);
          rc != SQLITE_OK) {
        statements.erase(it);
        fail(rc, fmt::format("cannot prepare \"{}\"", sql));
      }
    }
    return query(db, it->second, index_file);
  }

  void open() {
    std::error_code ec;
    fs::create_directories(blobs, ec);
    if (ec) throw cache_error(fmt::format("cannot create cache directory {}: {}", blobs.string(), ec.message()));
    const int rc = sqlite3_open_v2(index_file.c_str(), &db,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) fail(rc, "cannot open");
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(std::min<std::int64_t>(options.busy_timeout.count(), 1 << 30)));
    // Switching to WAL needs a moment alone with the file; when several
    // processes open a fresh cache at once, some are told to retry.
    const auto give_up = std::chrono::steady_clock::now() + options.busy_timeout;
    for (;;) {
      const int wal = sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
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
    // which is why a long WAL is still checkpointed on close: see ~state).
    // Durability is unchanged: committed frames in the WAL are part of the
    // database for every reader and survive a crash.
    if (const int configured = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        configured != SQLITE_OK) {
      fail(configured, "cannot configure the connection");
    }
    // SQLite's automatic checkpoint (every 1,000 pages), plus a note of the
    // WAL's length for the close.
    sqlite3_wal_hook(
        db,
        [](void* self, sqlite3* connection, const char* name, int pages) {
          static_cast<state*>(self)->wal_pages = pages;
          if (pages >= auto_checkpoint_pages) {
            sqlite3_wal_checkpoint_v2(connection, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
          }
          return SQLITE_OK;
        },
        this);
    // An index already at this schema needs no write transaction.
    {
      auto q = prepare("PRAGMA user_version");
      if (q.step() && q.integer(0) == schema_version) return;
    }
    transaction("BEGIN IMMEDIATE");
    try {
      std::int64_t version = 0;
      {
        auto q = prepare("PRAGMA user_version");
        if (q.step()) version = q.integer(0);
      }
      if (version > schema_version) {
        throw cache_error(fmt::format("cache index {} has schema version {}, newer than this penstock's ({})",
                                      index_file.string(), version, schema_version));
      }
      exec(schema_sql);
      // Columns added to existing tables (a table that schema_sql has just
      // created has them already).
      if (version < 3) add_column_unless_present("entries", "inline_value", add_inline_column_sql);
      if (version < 4) {
        add_column_unless_present("leases", "started", add_lease_started_column_sql);
        add_column_unless_present("in_use", "started", add_mark_started_column_sql);
      }
      exec(fmt::format("PRAGMA user_version={}", schema_version).c_str());
      transaction("COMMIT");
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
      throw;
    }
  }

  // Runs `add` (an ALTER TABLE adding `column` to `table`) unless the table has the column.
  void add_column_unless_present(std::string_view table, std::string_view column, const char* add) {
    bool present = false;
    {
      auto q = prepare(has_column_sql);
      q.bind(1, table).bind(2, column);
      present = q.step() && q.integer(0) > 0;
    }
    if (!present) exec(add);
  }

  // Is the owner process of a lease or mark (on this host) gone? A row with
  // this process's pid but another start time was left by an earlier process
  // that had the same pid (a container's pid 1, say).
  [[nodiscard]] bool owner_gone(const owner_row& o) const {
    if (o.pid == pid) return o.started && started && *o.started != *started;
    return !process_alive(o.pid, o.started);
  }

  // Is the owner of a lease or mark still there?
  [[nodiscard]] bool live(const owner_row& o, std::int64_t at) const {
    if (o.expires <= at) return false;
    if (o.host != host) return true;  // another host: only the expiry tells
    return !owner_gone(o);
  }

  [[nodiscard]] std::string describe(const owner_row& o, std::int64_t at) const {
    const double seconds = static_cast<double>(o.expires - at) / 1e9;
    return fmt::format("process {} on {} ({} {:.1f} s{})", o.pid, o.host, seconds >= 0 ? "expires in" : "expired",
                       std::abs(seconds), o.host == host && owner_gone(o) ? ", process gone" : "");
  }

  // Binds this process's start time (NULL where it cannot be read).
  void bind_started(query& q, int index) const {
    if (started) {
      q.bind(index, *started);
    } else {
      q.bind_null(index);
    }
  }

  // Writes a new in-use mark on `content`; returns its id. Called under the lock.
  std::int64_t insert_mark(const digest& content) {
    const std::int64_t id = next_id++;
    auto q = prepare(insert_mark_sql);
    q.bind(1, content)
        .bind(2, token)
        .bind(3, id)
        .bind(4, std::int64_t{pid})
        .bind(5, std::string_view(host))
        .bind(6, expiry(now(), options.mark_ttl));
    bind_started(q, 7);
    q.run();
    return id;
  }

  std::int64_t mark(const digest& content) {
    auto guard = lock();
    return insert_mark(content);  // autocommit: one statement is one transaction
  }

  void unmark(const digest& content, std::int64_t id) {
    prepare(delete_mark_sql).bind(1, content).bind(2, token).bind(3, id).run();
  }

  // Removes a mark when an operation is cut short by an exception.
  void unmark_after_failure(const digest& content, std::int64_t id) noexcept {
    try {
      auto guard = lock();
      unmark(content, id);
    } catch (const std::exception& e) {
      // The failure being propagated matters more; the mark is dropped by the
      // first gc after this process exits (or when it expires).
      std::fprintf(stderr, "penstock: %s (an in-use mark on blob %s stays until it expires)\n", e.what(),
                   content.hex().c_str());
    }
  }

  [[nodiscard]] fs::path blob_path(const digest& content) const {
    const std::string hex = content.hex();
    return blobs / hex.substr(0, 2) / hex;
  }

  [[nodiscard]] fs::path temporary_path() {
    const digest_bytes r = random_token();
    return blobs / fmt::format(".tmp-{}-{}-{:02x}", host_tag, pid, fmt::join(r.begin(), r.begin() + 8, ""));
  }

  // Writes the bytes to a fresh temporary file and fsyncs it. With `hash`:
  // hashes each io_chunk piece just before writing it (while it is in the
  // CPU cache), and leaves the fsync to publish(), which does it only if the
  // file is used.
  [[nodiscard]] fs::path write_temporary(std::span<const std::byte> bytes, hasher* hash = nullptr) {
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
      ::unlink(temp.c_str());
      throw;
    }
    return temp;
  }

  // Writes the index row (with its inline value, if `inline_value`), drops
  // the writer's in-use mark (mark_id != 0) and releases its lease
  // (lease_id != 0), in one transaction. Called under the lock.
  void commit_row(const digest& key, const digest& content, std::uint64_t size, const put_info& info, bool inline_value,
                  std::span<const std::byte> bytes, std::int64_t mark_id, std::int64_t lease_id) {
    transaction("BEGIN IMMEDIATE");
    try {
      {
        auto q = prepare(insert_entry_sql);
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
      if (lease_id != 0) prepare(delete_lease_sql).bind(1, key).bind(2, token).bind(3, lease_id).run();
      transaction("COMMIT");
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
      throw;
    }
  }

  // Stores a value of at most cache_inline_max bytes in its index row: the
  // commit publishes it whole, with no file and no fsync, and nothing for gc
  // to unlink, so no in-use mark either.
  put_result publish_inline(const digest& key, const digest& content, std::span<const std::byte> bytes,
                            const put_info& info, std::int64_t lease_id) {
    auto guard = lock();
    commit_row(key, content, bytes.size(), info, true, bytes, 0, lease_id);
    return put_result{content, bytes.size(), false, true};
  }

  // Puts a blob in place (unless one with this digest is there) and then the
  // index row naming it; see the integrity rules in cache_store.hpp. Either
  // `temp` is a complete file (fsync'ed unless `temp_unsynced`: then it is
  // fsync'ed here before it is renamed into place), or it is empty and
  // `bytes` are written.
  put_result publish(const digest& key, const digest& content, std::uint64_t size, const put_info& info, fs::path temp,
                     std::span<const std::byte> bytes, std::int64_t lease_id, bool temp_unsynced = false) {
    std::int64_t mark_id = 0;
    try {
      mark_id = mark(content);  // gc leaves the blob alone from here on
    } catch (...) {
      if (!temp.empty()) ::unlink(temp.c_str());
      throw;
    }
    put_result result{content, size, false};
    try {
      const fs::path target = blob_path(content);
      ensure_directory(target.parent_path());
      struct stat existing {};
      const bool present = ::stat(target.c_str(), &existing) == 0 && S_ISREG(existing.st_mode) &&
                           static_cast<std::uint64_t>(existing.st_size) == size;
      if (present) {
        if (!temp.empty()) ::unlink(temp.c_str());
        temp.clear();
      } else {
        if (temp.empty()) {
          temp = write_temporary(bytes);
        } else if (temp_unsynced) {
          const unique_fd written(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
          if (!written) throw cache_error(fmt::format("cannot open {}: {}", temp.string(), errno_text(errno)));
          sync_file(written.get(), temp);
        }
        // Replaces a stale file of the wrong size, if any, atomically.
        if (::rename(temp.c_str(), target.c_str()) != 0) {
          throw cache_error(
              fmt::format("cannot rename {} to {}: {}", temp.string(), target.string(), errno_text(errno)));
        }
        temp.clear();
        sync_directory(target.parent_path());
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

  // Deletes the rows naming a bad blob and the blob itself, if the file at
  // its path is still the one that was read (a writer may have just renamed
  // a good copy over it). Inline rows with this digest hold their own copy
  // and stay. Called under the lock, in a transaction.
  void drop_bad_blob(const digest& content, const struct stat* seen) {
    const fs::path path = blob_path(content);
    struct stat now_there {};
    if (seen != nullptr && ::stat(path.c_str(), &now_there) == 0) {
      if (now_there.st_ino != seen->st_ino || now_there.st_dev != seen->st_dev) return;
      // Failing to remove it is no error: the rows go anyway, and a writer
      // renames a good copy over a bad file.
      if (S_ISDIR(now_there.st_mode)) {
        ::rmdir(path.c_str());
      } else {
        ::unlink(path.c_str());
      }
    }
    prepare(delete_entries_of_digest_sql).bind(1, content).run();
  }
};

// ---- cache_store -------------------------------------------------------------

cache_store::cache_store(const fs::path& directory, cache_store_options options)
    : state_(std::make_unique<state>(directory, std::move(options))) {
  state_->open();
}

cache_store::~cache_store() = default;

const fs::path& cache_store::directory() const noexcept { return state_->directory; }
fs::path cache_store::blob_path(const digest& content) const { return state_->blob_path(content); }
fs::path cache_store::index_path() const { return state_->index_file; }

std::int64_t cache_store::lease_id_for(const digest& key, const cache_lease* lease) const {
  if (lease == nullptr || !lease->held()) return 0;
  if (lease->store_ != this) {
    throw std::invalid_argument(
        fmt::format("put of cache key {}: the lease belongs to another cache store", key.hex()));
  }
  if (lease->key_ != key) {
    throw std::invalid_argument(
        fmt::format("put of cache key {}: the lease is on another key ({})", key.hex(), lease->key_.hex()));
  }
  return static_cast<std::int64_t>(lease->id_);
}

put_result cache_store::put(const digest& key, std::span<const std::byte> bytes, const put_info& info,
                            cache_lease* lease) {
  const std::int64_t lease_id = lease_id_for(key, lease);
  put_result result;
  if (bytes.size() >= large_value_min) {
    // A large value is hashed piece by piece as it is written to a temporary
    // file (one pass over memory, not two); only then is the digest known.
    // If a blob with that digest is already stored, the file goes unsynced
    // (a write to the page cache wasted, no fsync); else it is fsync'ed and
    // renamed into place.
    hasher hash;
    fs::path temp = state_->write_temporary(bytes, &hash);
    const digest content = hash.finish();
    result = state_->publish(key, content, bytes.size(), info, std::move(temp), {}, lease_id, true);
  } else {
    // Hashing first lets an already stored value cost no write at all: the
    // common case when a rerun step produces the same output (early cutoff).
    const digest content = hasher().update(bytes.data(), bytes.size()).finish();
    result = bytes.size() <= cache_inline_max ? state_->publish_inline(key, content, bytes, info, lease_id)
                                              : state_->publish(key, content, bytes.size(), info, {}, bytes, lease_id);
  }
  if (lease_id != 0) lease->store_ = nullptr;  // released with the row
  return result;
}

put_result cache_store::put(const digest& key, const std::function<digest(std::ostream&)>& write, const put_info& info,
                            cache_lease* lease) {
  auto& s = *state_;
  const std::int64_t lease_id = lease_id_for(key, lease);
  staging_streambuf buffer([&s] { return s.temporary_path(); });
  digest content;
  std::uint64_t size = 0;
  fs::path temp;
  {
    std::ostream out(&buffer);
    const digest claimed = write(out);
    out.flush();
    const std::string where =
        buffer.spilled() ? buffer.temporary().string() : fmt::format("a temporary file in {}", s.blobs.string());
    if (buffer.error() != 0) {
      throw cache_error(fmt::format("cannot write the value of cache key {} to {}: {}", key.hex(), where,
                                    errno_text(buffer.error())));
    }
    if (!out) {
      throw cache_error(fmt::format("writing the value of cache key {} to {} failed (stream error)", key.hex(), where));
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
}

bool cache_store::fresh(std::chrono::system_clock::time_point last_used) const { return state_->fresh(last_used); }

cache_result cache_store::lookup(const digest& key) {
  auto& s = *state_;
  auto guard = s.lock();
  cache_result result;
  std::string why;
  {
    auto q = s.prepare(select_entry_sql);
    q.bind(1, key);
    if (!q.step()) return result;
    if (auto e = read_entry(q, why)) {
      result.status = cache_status::hit;
      result.entry = std::move(*e);
      return result;
    }
  }
  s.prepare(delete_entry_sql).bind(1, key).run();
  result.status = cache_status::index_corrupt;
  result.message = fmt::format("cache entry {}: its row in {} is unreadable ({}); the row was removed", key.hex(),
                               s.index_file.string(), why);
  return result;
}

std::vector<cache_result> cache_store::lookup(std::span<const digest> keys) {
  auto& s = *state_;
  auto guard = s.lock();
  std::vector<cache_result> results(keys.size());
  std::vector<std::size_t> unreadable;
  s.transaction("BEGIN");  // one read transaction, one snapshot
  try {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto q = s.prepare(select_planned_entry_sql);
      q.bind(1, keys[i]);
      if (!q.step()) continue;
      std::string why;
      if (auto e = read_planned_entry(q, keys[i], why)) {
        results[i].status = cache_status::hit;
        results[i].entry = std::move(*e);
      } else {
        results[i].status = cache_status::index_corrupt;
        results[i].message = fmt::format("cache entry {}: its row in {} is unreadable ({}); the row was removed",
                                         keys[i].hex(), s.index_file.string(), why);
        unreadable.push_back(i);
      }
    }
    s.transaction("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
  for (const std::size_t i : unreadable) s.prepare(delete_entry_sql).bind(1, keys[i]).run();
  return results;
}

void cache_store::touch(std::span<const digest> keys) {
  auto& s = *state_;
  auto guard = s.lock();
  s.transaction("BEGIN IMMEDIATE");
  try {
    const std::int64_t at = s.stamp();
    const std::int64_t stale_before = s.stale_before();
    for (const auto& key : keys) s.prepare(touch_stale_entry_sql).bind(1, key).bind(2, at).bind(3, stale_before).run();
    s.transaction("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
}

namespace {

std::size_t total_size(std::span<const std::span<std::byte>> parts) noexcept {
  std::size_t total = 0;
  for (const auto& part : parts) total += part.size();
  return total;
}

}  // namespace

cache_result cache_store::get(const digest& key,
                              const std::function<std::span<std::byte>(const cache_entry&)>& destination) {
  return get_parts(key, [&destination](const cache_entry& e) { return std::vector{destination(e)}; });
}

cache_result cache_store::get_parts(
    const digest& key, const std::function<std::vector<std::span<std::byte>>(const cache_entry&)>& destination) {
  auto& s = *state_;
  cache_result result;
  std::int64_t mark_id = 0;
  std::vector<std::byte> inline_bytes;
  // Reads the key's row: false if there is none; else `entry` is set if the
  // row is readable (`why` says what is wrong if not), and an inline value's
  // bytes are copied into inline_bytes.
  const auto read_row = [&](std::optional<cache_entry>& entry, std::string& why) {
    auto q = s.prepare(select_entry_value_sql);
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
      if (entry && entry->inline_value && s.fresh(entry->last_used)) result.entry = std::move(*entry);
    }
    if (!result.entry.inline_value) {
      s.transaction("BEGIN IMMEDIATE");
      try {
        std::optional<cache_entry> entry;
        std::string why;
        const bool found = read_row(entry, why);
        if (found && !entry) {
          s.prepare(delete_entry_sql).bind(1, key).run();
          result.status = cache_status::index_corrupt;
          result.message = fmt::format("cache entry {}: its row in {} is unreadable ({}); the row was removed",
                                       key.hex(), s.index_file.string(), why);
        } else if (entry) {
          if (!entry->inline_value) mark_id = s.insert_mark(entry->content);
          if (!s.fresh(entry->last_used)) {
            const std::int64_t used = s.stamp();
            s.prepare(touch_entry_sql).bind(1, key).bind(2, used).run();
            entry->last_used = from_ns(used);
          }
          result.entry = std::move(*entry);
        }
        s.transaction("COMMIT");
        if (!found || !entry) return result;
      } catch (...) {
        sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
        throw;
      }
    }
  }
  const cache_entry& entry = result.entry;
  const digest content = entry.content;
  const auto parts_for = [&] {
    std::vector<std::span<std::byte>> parts = destination(entry);
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
      result.message = fmt::format("cache entry {}: its inline value in {} (digest {}) has {} bytes, the index says {}",
                                   key.hex(), s.index_file.string(), content.hex(), inline_bytes.size(), entry.size);
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
    if (!result.hit()) {
      auto guard = s.lock();
      s.prepare(delete_inline_entry_sql)
          .bind(1, key)
          .bind(2, content)
          .bind(3, std::span(std::as_const(inline_bytes)))
          .run();
      result.message += "; the index row was removed, the value will be recomputed";
    }
    return result;
  }

  // 2. Read and verify, outside the lock.
  const fs::path path = s.blob_path(content);
  struct stat seen {};
  bool opened = false;
  try {
    const std::vector<std::span<std::byte>> parts = parts_for();
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      const int error = errno;
      if (error == ENOENT || error == ENOTDIR) {
        result.status = cache_status::blob_missing;
        result.message =
            fmt::format("cache entry {}: blob {} (digest {}) is missing", key.hex(), path.string(), content.hex());
      } else if (error == EIO) {
        result.status = cache_status::blob_corrupt;
        result.message = fmt::format("cache entry {}: blob {} (digest {}) cannot be opened: {}", key.hex(),
                                     path.string(), content.hex(), errno_text(error));
      } else {
        throw cache_error(
            fmt::format("cannot open blob {} of cache entry {}: {}", path.string(), key.hex(), errno_text(error)));
      }
    } else if (::fstat(fd.get(), &seen) != 0) {
      throw cache_error(fmt::format("cannot stat blob {}: {}", path.string(), errno_text(errno)));
    } else {
      opened = true;
      if (!S_ISREG(seen.st_mode)) {
        result.status = cache_status::blob_corrupt;
        result.message = fmt::format("cache entry {}: blob {} (digest {}) is not a regular file", key.hex(),
                                     path.string(), content.hex());
      } else if (static_cast<std::uint64_t>(seen.st_size) != entry.size) {
        result.status = cache_status::blob_truncated;
        result.message =
            fmt::format("cache entry {}: blob {} (digest {}) has {} bytes, the index says {}", key.hex(), path.string(),
                        content.hex(), static_cast<std::uint64_t>(seen.st_size), entry.size);
      } else {
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
            throw cache_error(fmt::format("cannot read blob {} of cache entry {}: {}", path.string(), key.hex(),
                                          errno_text(read_error)));
          }
          result.status = cache_status::blob_corrupt;
          result.message = fmt::format("cache entry {}: blob {} (digest {}) cannot be read: {}", key.hex(),
                                       path.string(), content.hex(), errno_text(read_error));
        } else if (done != entry.size) {
          result.status = cache_status::blob_truncated;
          result.message = fmt::format("cache entry {}: blob {} (digest {}) ended after {} of {} bytes", key.hex(),
                                       path.string(), content.hex(), done, entry.size);
        } else if (const digest actual = hash.finish(); actual != content) {
          result.status = cache_status::blob_corrupt;
          result.message = fmt::format("cache entry {}: blob {} does not match its digest {} (its bytes hash to {})",
                                       key.hex(), path.string(), content.hex(), actual.hex());
        } else {
          result.status = cache_status::hit;
        }
      }
    }
  } catch (...) {
    s.unmark_after_failure(content, mark_id);
    throw;
  }

  // 3. Unmark; a bad blob goes, with every row that names it.
  auto guard = s.lock();
  s.transaction("BEGIN IMMEDIATE");
  try {
    s.unmark(content, mark_id);
    if (!result.hit()) {
      s.drop_bad_blob(content, opened ? &seen : nullptr);
      result.message += "; the blob and the index rows naming it were removed, the value will be recomputed";
    }
    s.transaction("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
  return result;
}

cache_result cache_store::get(const digest& key, std::vector<std::byte>& out) {
  return get(key, [&out](const cache_entry& e) {
    out.resize(e.size);
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
  } catch (const std::exception& e) {
    const std::string from = result.entry.inline_value
                                 ? fmt::format("its inline value in {}", state_->index_file.string())
                                 : fmt::format("blob {}", state_->blob_path(result.entry.content).string());
    throw cache_error(fmt::format("cannot load the value of cache entry {} from {}: {}", key.hex(), from, e.what()));
  }
  return result;
}

bool cache_store::erase(const digest& key) {
  auto& s = *state_;
  auto guard = s.lock();
  s.prepare(delete_entry_sql).bind(1, key).run();
  return sqlite3_changes(s.db) > 0;
}

lease_attempt cache_store::try_acquire(const digest& key, std::chrono::seconds ttl) {
  auto& s = *state_;
  auto guard = s.lock();
  lease_attempt attempt;
  s.transaction("BEGIN IMMEDIATE");
  try {
    const std::int64_t at = s.now();
    bool cached = false;
    bool bad_row = false;
    {
      auto q = s.prepare(select_entry_sql);
      q.bind(1, key);
      if (q.step()) {
        std::string why;
        cached = read_entry(q, why).has_value();
        bad_row = !cached;
      }
    }
    if (bad_row) s.prepare(delete_entry_sql).bind(1, key).run();  // recomputing replaces it anyway
    std::optional<owner_row> holder;
    if (!cached) {
      auto q = s.prepare(select_lease_sql);
      q.bind(1, key);
      if (q.step()) holder = read_owner(q, 0);
    }
    if (cached) {
      attempt.status = lease_status::cached;
    } else if (holder && s.live(*holder, at)) {
      attempt.status = lease_status::held;
      attempt.holder = holder->owner == s.token ? std::string("this cache store") : s.describe(*holder, at);
    } else {
      if (holder) attempt.holder = s.describe(*holder, at);
      const std::int64_t id = s.next_id++;
      auto q = s.prepare(insert_lease_sql);
      q.bind(1, key)
          .bind(2, s.token)
          .bind(3, id)
          .bind(4, std::int64_t{s.pid})
          .bind(5, std::string_view(s.host))
          .bind(6, expiry(at, ttl));
      s.bind_started(q, 7);
      q.run();
      attempt.status = lease_status::acquired;
      attempt.lease = cache_lease(this, key, static_cast<std::uint64_t>(id));
    }
    s.transaction("COMMIT");
  } catch (...) {
    attempt.lease.store_ = nullptr;                             // the row was rolled back
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
  return attempt;
}

lease_attempt cache_store::acquire_or_wait(const digest& key, std::chrono::seconds ttl,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(1000);
  constexpr auto longest = std::chrono::microseconds(50'000);
  for (;;) {
    lease_attempt attempt = try_acquire(key, ttl);
    if (attempt.status != lease_status::held) return attempt;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return attempt;
    std::chrono::microseconds wait = pause;
    {
      // Up to a quarter of jitter, so that waiters do not poll in step.
      auto guard = state_->lock();
      wait += std::chrono::microseconds(state_->jitter() % static_cast<unsigned>(pause.count() / 4 + 1));
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(wait, deadline - now));  // polling, not synchronisation
    pause = std::min(pause * 2, longest);
  }
}

cache_stats cache_store::stats() {
  auto& s = *state_;
  auto guard = s.lock();
  cache_stats out;
  s.transaction("BEGIN");  // one snapshot for all the counts
  try {
    {
      auto q = s.prepare(count_entries_sql);
      if (q.step()) out.entries = static_cast<std::uint64_t>(q.integer(0));
    }
    {
      auto q = s.prepare(count_blobs_sql);
      if (q.step()) {
        out.blobs = static_cast<std::uint64_t>(q.integer(0));
        out.bytes = static_cast<std::uint64_t>(q.integer(1));
      }
    }
    {
      auto q = s.prepare(count_inline_sql);
      if (q.step()) {
        out.inline_values = static_cast<std::uint64_t>(q.integer(0));
        out.bytes += static_cast<std::uint64_t>(q.integer(1));
      }
    }
    {
      auto q = s.prepare(count_leases_sql);
      if (q.step()) out.leases = static_cast<std::uint64_t>(q.integer(0));
    }
    s.transaction("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
  return out;
}

gc_result cache_store::gc(const gc_limits& limits) {
  auto& s = *state_;
  auto guard = s.lock();
  gc_result out;
  // One write transaction for all of it: a put or get that marks a digest
  // waits for it, then finds the world gc left (see cache_store.hpp).
  s.transaction("BEGIN IMMEDIATE");
  try {
    const std::int64_t at = s.now();

    // Stale leases and marks go; the live ones protect what they name.
    digest_set leased;
    digest_set in_use;
    {
      auto sweep = [&](const char* select_sql, const char* delete_sql, digest_set& live_set) {
        std::vector<std::pair<std::optional<digest>, owner_row>> stale;
        {
          auto q = s.prepare(select_sql);
          while (q.step()) {
            const auto first = q.digest_at(0);
            const auto owner = read_owner(q, 1);
            if (first && owner && s.live(*owner, at)) {
              live_set.insert(*first);
            } else if (first && owner) {
              stale.emplace_back(first, *owner);
            } else {
              stale.emplace_back(std::nullopt, owner_row{});
            }
          }
        }
        for (const auto& [first, owner] : stale) {
          if (!first) continue;  // an unreadable row: removed below
          s.prepare(delete_sql).bind(1, *first).bind(2, owner.owner).bind(3, owner.id).run();
          out.stale_marks_removed += static_cast<std::uint64_t>(sqlite3_changes(s.db));
        }
      };
      sweep(select_leases_sql, delete_lease_sql, leased);
      sweep(select_marks_sql, delete_mark_sql, in_use);
      // Rows too damaged to name an owner protect nothing.
      s.exec(
          "DELETE FROM leases WHERE typeof(key) != 'blob' OR length(key) != 16 OR typeof(owner) != 'blob' "
          "OR length(owner) != 16 OR typeof(id) != 'integer' OR typeof(pid) != 'integer' OR typeof(host) != 'text' "
          "OR typeof(expires) != 'integer'");
      out.stale_marks_removed += static_cast<std::uint64_t>(sqlite3_changes(s.db));
      s.exec(
          "DELETE FROM in_use WHERE typeof(digest) != 'blob' OR length(digest) != 16 OR typeof(owner) != 'blob' "
          "OR length(owner) != 16 OR typeof(id) != 'integer' OR typeof(pid) != 'integer' OR typeof(host) != 'text' "
          "OR typeof(expires) != 'integer'");
      out.stale_marks_removed += static_cast<std::uint64_t>(sqlite3_changes(s.db));
    }

    s.prepare(delete_bad_rows_sql).run();
    out.bad_rows_removed = static_cast<std::uint64_t>(sqlite3_changes(s.db));

    // Least recently used first.
    struct lru_row {
      digest key;
      digest content;
      std::uint64_t size;
      std::int64_t last_used;
      bool inline_value;  // its own bytes, in the row: counted per row, no file to unlink
    };
    std::vector<lru_row> rows;
    std::unordered_map<digest, std::pair<std::uint64_t, std::uint64_t>, digest_hash> blobs;  // -> (rows, size)
    std::uint64_t total = 0;
    {
      auto q = s.prepare(select_lru_sql);
      while (q.step()) {
        const auto row_key = q.digest_at(0);
        const auto row_content = q.digest_at(1);
        if (!row_key || !row_content) continue;  // cannot happen: bad rows were deleted above
        lru_row r{*row_key, *row_content, static_cast<std::uint64_t>(q.integer(2)), q.integer(3), q.integer(4) != 0};
        if (r.inline_value) {
          total += r.size;
          rows.push_back(r);
          continue;
        }
        auto& [count, size] = blobs[r.content];
        if (count++ == 0) {
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
      s.prepare(delete_entry_sql).bind(1, r.key).run();
      ++out.entries_removed;
      if (r.inline_value) {
        total -= r.size;
        out.bytes_freed += r.size;
        continue;
      }
      auto& [count, size] = blobs[r.content];
      if (--count == 0) {
        total -= size;
        const fs::path path = s.blob_path(r.content);
        if (::unlink(path.c_str()) == 0) {
          ++out.blobs_removed;
          out.bytes_freed += size;
        } else if (errno != ENOENT) {
          throw cache_error(fmt::format("cannot remove blob {}: {}", path.string(), errno_text(errno)));
        }
      }
    }

    // Files no row names: blobs whose writer died between rename and index
    // (or whose rows were removed as corrupt), and dead writers' temporaries.
    digest_set named;
    {
      auto q = s.prepare(select_digests_sql);
      while (q.step()) {
        if (auto d = q.digest_at(0)) named.insert(*d);
      }
    }
    const auto abandoned = fs::file_time_type::clock::now() - abandoned_after;
    auto temporary_is_dead = [&](const fs::directory_entry& file) {
      // .tmp-<host tag>-<pid>-<random>
      const std::string name = file.path().filename().string();
      const auto dash = name.find('-', 5);
      const auto dash2 = dash == std::string::npos ? dash : name.find('-', dash + 1);
      std::error_code ec;
      const auto written = file.last_write_time(ec);
      if (!ec && written < abandoned) return true;
      if (dash2 == std::string::npos || name.compare(5, dash - 5, s.host_tag) != 0) return false;
      const std::string pid_text = name.substr(dash + 1, dash2 - dash - 1);
      char* end = nullptr;
      const long long writer = std::strtoll(pid_text.c_str(), &end, 10);
      if (end == pid_text.c_str() || *end != '\0') return false;
      return writer != s.pid && !process_alive(writer, std::nullopt);
    };
    auto remove_file = [&](const fs::path& path, std::uint64_t& counter) {
      if (::unlink(path.c_str()) == 0) {
        ++counter;
      } else if (errno != ENOENT) {
        throw cache_error(fmt::format("cannot remove {}: {}", path.string(), errno_text(errno)));
      }
    };
    std::error_code ec;
    for (const auto& top : fs::directory_iterator(s.blobs, ec)) {
      const std::string name = top.path().filename().string();
      if (name.starts_with(".tmp-")) {
        if (temporary_is_dead(top)) remove_file(top.path(), out.temporaries_removed);
        continue;
      }
      std::error_code type_error;
      if (name.size() != 2 || !top.is_directory(type_error)) continue;
      for (const auto& file : fs::directory_iterator(top.path(), ec)) {
        const auto d = digest_from_hex(file.path().filename().string());
        if (!d || d->hex().substr(0, 2) != name) continue;  // not ours: leave it
        if (!named.contains(*d) && !in_use.contains(*d)) remove_file(file.path(), out.orphans_removed);
      }
    }
    if (ec) throw cache_error(fmt::format("cannot list {}: {}", s.blobs.string(), ec.message()));
    s.transaction("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
  return out;
}

// ---- run and step records -----------------------------------------------------

void cache_store::record_run(const run_record& run) {
  if (run.run_id.empty()) throw std::invalid_argument("record_run: the run id is empty");
  auto& s = *state_;
  auto guard = s.lock();
  s.transaction("BEGIN IMMEDIATE");
  try {
    s.prepare(insert_run_sql)
        .bind(1, std::string_view(run.run_id))
        .bind(2, std::string_view(run.pipeline))
        .bind(3, to_ns(run.started))
        .bind(4, static_cast<std::int64_t>(run.wall.count()))
        .bind(5, static_cast<std::int64_t>(run.steps))
        .bind(6, static_cast<std::int64_t>(run.hits))
        .bind(7, static_cast<std::int64_t>(run.computed))
        .bind(8, static_cast<std::int64_t>(run.reported_misses))
        .bind(9, static_cast<std::int64_t>(run.failed))
        .run();
    const auto kept = std::min<std::uint64_t>(s.options.runs_kept, std::numeric_limits<std::int64_t>::max());
    s.prepare(prune_runs_sql).bind(1, static_cast<std::int64_t>(kept)).run();
    s.transaction("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
}

std::optional<run_record> cache_store::last_run(std::string_view pipeline) {
  auto& s = *state_;
  auto guard = s.lock();
  auto q = s.prepare(pipeline.empty() ? select_last_run_sql : select_last_run_of_sql);
  if (!pipeline.empty()) q.bind(1, pipeline);
  while (q.step()) {
    if (auto r = read_run(q)) return r;
  }
  return std::nullopt;
}

void cache_store::record_steps(std::span<const step_record> steps) {
  if (steps.empty()) return;
  auto& s = *state_;
  auto guard = s.lock();
  s.transaction("BEGIN IMMEDIATE");
  try {
    for (const auto& r : steps) {
      s.prepare(upsert_step_sql)
          .bind(1, std::string_view(r.pipeline))
          .bind(2, std::string_view(r.step))
          .bind(3, r.key)
          .bind(4, std::string_view(r.components))
          .bind(5, std::string_view(r.run_id))
          .bind(6, to_ns(r.when))
          .run();
    }
    s.transaction("COMMIT");
  } catch (...) {
    sqlite3_exec(s.db, "ROLLBACK", nullptr, nullptr, nullptr);  // the error being thrown says what went wrong
    throw;
  }
}

std::vector<step_record> cache_store::last_steps(std::string_view pipeline) {
  auto& s = *state_;
  auto guard = s.lock();
  std::vector<step_record> out;
  auto q = s.prepare(select_steps_sql);
  q.bind(1, pipeline);
  while (q.step()) {
    if (auto r = read_step(q, pipeline)) out.push_back(std::move(*r));
  }
  return out;
}

// ---- cache_lease -------------------------------------------------------------

cache_lease::cache_lease(cache_lease&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)), key_(other.key_), id_(other.id_) {}

cache_lease& cache_lease::operator=(cache_lease&& other) noexcept {
  if (this != &other) {
    if (held()) {
      try {
        release();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "penstock: %s (the lease on cache key %s expires on its own)\n", e.what(),
                     key_.hex().c_str());
      }
    }
    store_ = std::exchange(other.store_, nullptr);
    key_ = other.key_;
    id_ = other.id_;
  }
  return *this;
}

cache_lease::~cache_lease() {
  if (!held()) return;
  try {
    release();
  } catch (const std::exception& e) {
    // A destructor cannot throw; the lease expires on its own.
    std::fprintf(stderr, "penstock: %s (the lease on cache key %s expires on its own)\n", e.what(), key_.hex().c_str());
  }
}

bool cache_lease::renew(std::chrono::seconds ttl) {
  if (!held()) return false;
  auto& s = *store_->state_;
  auto guard = s.lock();
  s.prepare(renew_lease_sql)
      .bind(1, key_)
      .bind(2, s.token)
      .bind(3, static_cast<std::int64_t>(id_))
      .bind(4, expiry(s.now(), ttl))
      .run();
  return sqlite3_changes(s.db) > 0;
}

bool cache_lease::release() {
  if (!held()) return false;
  auto& s = *store_->state_;
  auto guard = s.lock();
  s.prepare(delete_lease_sql).bind(1, key_).bind(2, s.token).bind(3, static_cast<std::int64_t>(id_)).run();
  store_ = nullptr;
  return sqlite3_changes(s.db) > 0;
}

}  // namespace penstock::detail::r1
