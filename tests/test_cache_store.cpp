// The content-addressed cache store (runtime/src/cache_store.hpp): round
// trips, one blob per digest, every kind of damage reported as a miss, writers
// killed at any point, several processes sharing one directory, leases, gc.
// Processes meet through pipes, never through sleeps.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sqlite3.h>

#include <penstock/digest.hpp>
#include <penstock/value_traits.hpp>

#include "cache_store.hpp"
#include "scratch_directory.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using penstock::digest;
using penstock::hasher;
using penstock::detail::r1::cache_entry;
using penstock::detail::r1::cache_error;
using penstock::detail::r1::cache_inline_max;
using penstock::detail::r1::cache_result;
using penstock::detail::r1::cache_status;
using penstock::detail::r1::cache_store;
using penstock::detail::r1::cache_store_options;
using penstock::detail::r1::gc_limits;
using penstock::detail::r1::lease_status;
using penstock::detail::r1::put_info;

namespace {

using penstock_test::scratch_directory;

digest key_of(std::string_view name, std::uint64_t i = 0, std::uint64_t j = 0) {
  return hasher().update(name).update_value(i).update_value(j).finish();
}

// Deterministic bytes of a deterministic size (min_size .. min_size + max_size,
// by default 1 KiB .. 257 KiB: inline or in a blob file) for a seed.
std::vector<std::byte> value_for(std::uint64_t seed, std::size_t max_size = 256 << 10, std::size_t min_size = 1024) {
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  auto next = [&x] {
    x += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<std::byte> out(min_size + next() % max_size);
  for (auto& b : out) b = static_cast<std::byte>(next());
  return out;
}
std::vector<std::byte> value_for(const digest& key) { return value_for(key.low ^ key.high); }
// A value too large to be stored inline: it gets a blob file.
std::vector<std::byte> blob_value_for(std::uint64_t seed) { return value_for(seed, 192 << 10, cache_inline_max + 1); }
std::vector<std::byte> blob_value_for(const digest& key) { return blob_value_for(key.low ^ key.high); }
// A value small enough to be stored inline.
std::vector<std::byte> inline_value_for(std::uint64_t seed) { return value_for(seed, cache_inline_max - 1024); }

digest digest_of(std::span<const std::byte> bytes) { return hasher().update(bytes.data(), bytes.size()).finish(); }

// Two hex digits, for a blob literal in SQL.
std::string fmt_hex(std::byte b) {
  constexpr const char* digits = "0123456789abcdef";
  return {digits[std::to_integer<unsigned>(b) >> 4], digits[std::to_integer<unsigned>(b) & 0xf]};
}

const digest bytes_type = hasher().update("bytes").finish();

std::size_t count_files(const fs::path& dir, std::string_view prefix = "") {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename().string().starts_with(prefix)) ++n;
  }
  return n;
}
std::size_t count_temporaries(const fs::path& dir) { return count_files(dir / "blobs", ".tmp-"); }

// A pipe whose ends close themselves.
struct channel {
  int read_end = -1;
  int write_end = -1;
  channel() {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe() failed");
    read_end = fds[0];
    write_end = fds[1];
  }
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  ~channel() {
    close_read();
    close_write();
  }
  void close_read() {
    if (read_end >= 0) ::close(std::exchange(read_end, -1));
  }
  void close_write() {
    if (write_end >= 0) ::close(std::exchange(write_end, -1));
  }
  void send(char c = 'x') const {
    while (::write(write_end, &c, 1) != 1) {
      if (errno != EINTR) std::abort();
    }
  }
  // The next byte, or 0 at end of file.
  char receive() const {
    char c = 0;
    for (;;) {
      const ssize_t n = ::read(read_end, &c, 1);
      if (n == 1) return c;
      if (n == 0) return 0;
      if (errno != EINTR) std::abort();
    }
  }
};

// Runs body() in a child process; its return value is the exit code. The
// parent must not hold a cache_store open across the fork (SQLite forbids
// using a connection in a child, and its per-process lock table would lie).
template <class Body>
pid_t spawn(Body&& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork() failed");
  if (pid == 0) {
    int code = 0;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: %s\n", ::getpid(), e.what());
      code = 100;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

// The child's exit code, or 128 + the signal that ended it.
int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs SQL on a store's index behind its back.
void damage_index(const fs::path& index, const std::string& sql, const digest& key) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(index.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10'000);
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::array<unsigned char, 16> bytes{};
  for (int i = 0; i < 8; ++i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<unsigned char>(key.high >> (56 - 8 * i));
    bytes[static_cast<std::size_t>(8 + i)] = static_cast<unsigned char>(key.low >> (56 - 8 * i));
  }
  sqlite3_bind_blob(statement, 1, bytes.data(), 16, SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(statement), SQLITE_DONE) << sqlite3_errmsg(db);
  EXPECT_EQ(sqlite3_changes(db), 1) << sql;
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

void make_writable(const fs::path& file) { fs::permissions(file, fs::perms::owner_write, fs::perm_options::add); }

}  // namespace

// ---- round trips -------------------------------------------------------------

TEST(cache_store, contiguous_bytes_round_trip_with_their_index_row) {
  scratch_directory dir;
  cache_store store(dir.path());
  const digest key = key_of("round trip");
  const auto bytes = blob_value_for(key);

  const auto put = store.put(key, bytes, {bytes_type, "run-1"});
  EXPECT_EQ(put.content, digest_of(bytes));
  EXPECT_EQ(put.size, bytes.size());
  EXPECT_TRUE(put.wrote_blob);
  const fs::path blob = store.blob_path(put.content);
  EXPECT_EQ(blob, dir.path() / "blobs" / put.content.hex().substr(0, 2) / put.content.hex());
  ASSERT_TRUE(fs::exists(blob));
  EXPECT_EQ(fs::file_size(blob), bytes.size());
  EXPECT_EQ(fs::status(blob).permissions() & fs::perms::owner_write, fs::perms::none) << "blobs are read-only";

  const cache_result found = store.lookup(key);
  ASSERT_TRUE(found.hit());
  EXPECT_EQ(found.entry.key, key);
  EXPECT_EQ(found.entry.content, put.content);
  EXPECT_EQ(found.entry.size, bytes.size());
  EXPECT_EQ(found.entry.type, bytes_type);
  EXPECT_EQ(found.entry.run_id, "run-1");
  EXPECT_LE(found.entry.created, found.entry.last_used);

  std::vector<std::byte> out;
  const cache_result got = store.get(key, out);
  ASSERT_TRUE(got.hit()) << got.message;
  EXPECT_TRUE(got.message.empty());
  EXPECT_EQ(out, bytes);
  EXPECT_EQ(got.entry.last_used, found.entry.last_used) << "an entry used within touch_interval is not rewritten";

  const digest batch[] = {key_of("never stored"), key, key_of("also never stored")};
  const auto many = store.lookup(batch);
  ASSERT_EQ(many.size(), 3u);
  EXPECT_EQ(many[0].status, cache_status::absent);
  EXPECT_TRUE(many[1].hit());
  EXPECT_EQ(many[1].entry.content, put.content);
  EXPECT_EQ(many[2].status, cache_status::absent);

  EXPECT_EQ(store.get(key_of("never stored"), out).status, cache_status::absent);
  EXPECT_EQ(store.lookup(key_of("never stored")).status, cache_status::absent);
  EXPECT_EQ(count_temporaries(dir.path()), 0u);
}

// SQLite's data_version, seen from a connection of its own: it changes when
// another connection commits a change.
class index_watcher {
 public:
  explicit index_watcher(const fs::path& index) {
    if (sqlite3_open_v2(index.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + index.string());
  }
  index_watcher(const index_watcher&) = delete;
  index_watcher& operator=(const index_watcher&) = delete;
  ~index_watcher() { sqlite3_close_v2(db_); }
  [[nodiscard]] std::int64_t version() const {
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db_, "PRAGMA data_version", -1, &statement, nullptr);
    std::int64_t v = -1;
    if (sqlite3_step(statement) == SQLITE_ROW) v = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

TEST(cache_store, warnings_go_to_the_sink_while_one_is_set_and_to_stderr_after) {
  scratch_directory dir;
  cache_store store(dir.path());
  std::vector<std::string> told;
  store.set_warning_sink([&told](std::string message) { told.push_back(std::move(message)); });
  store.warn("the lease on cache key 00 expires on its own");
  testing::internal::CaptureStderr();
  store.set_warning_sink(nullptr);
  store.warn("after the run");
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_EQ(told, std::vector<std::string>{"the lease on cache key 00 expires on its own"});
  EXPECT_EQ(printed, "penstock: after the run\n");
}

TEST(cache_store, a_fresh_entry_is_read_without_a_write_and_a_stale_one_is_marked_used) {
  scratch_directory dir;
  cache_store store(dir.path());  // touch_interval: an hour
  const digest small = key_of("fresh inline");
  const digest large = key_of("fresh blob");
  ASSERT_TRUE(store.put(small, value_for(1, 4096), {bytes_type, "r"}).inline_value);
  ASSERT_FALSE(store.put(large, blob_value_for(2), {bytes_type, "r"}).inline_value);
  const auto stored_small = store.lookup(small).entry.last_used;
  const auto stored_large = store.lookup(large).entry.last_used;

  index_watcher watcher(store.index_path());
  const auto before = watcher.version();
  std::vector<std::byte> out;
  for (int i = 0; i < 3; ++i) {
    const auto got = store.get(small, out);
    ASSERT_TRUE(got.hit()) << got.message;
    EXPECT_EQ(got.entry.last_used, stored_small);
  }
  const digest both[] = {small, large};
  store.touch(both);
  EXPECT_EQ(watcher.version(), before) << "reading a fresh inline value and touching fresh entries wrote the index";
  ASSERT_TRUE(store.get(large, out).hit());  // a blob is marked in use while it is read: that writes
  EXPECT_EQ(store.lookup(large).entry.last_used, stored_large);

  // Two hours later both are stale: a get and a touch mark them used.
  cache_store later(dir.path(), {.clock = [] { return std::chrono::system_clock::now() + 2h; }});
  const auto got = later.get(small, out);
  ASSERT_TRUE(got.hit()) << got.message;
  EXPECT_GT(got.entry.last_used, stored_small + 1h);
  EXPECT_GT(later.lookup(small).entry.last_used, stored_small + 1h);
  const digest one[] = {large};
  later.touch(one);
  EXPECT_GT(later.lookup(large).entry.last_used, stored_large + 1h);
}

TEST(cache_store, streamed_values_round_trip_through_value_traits) {
  using traits = penstock::value_traits<std::vector<float>>;
  scratch_directory dir;
  const digest key = key_of("stream");
  std::vector<float> value(300'000);
  for (std::size_t i = 0; i < value.size(); ++i) value[i] = static_cast<float>(i) * 0.5f;
  {
    cache_store store(dir.path());
    const auto put = store.put(key, [&](std::ostream& out) { return traits::save(out, value); },
                               {traits::type_fingerprint(), "run-2"});
    EXPECT_EQ(put.content, traits::hash(value)) << "the store's digest is the value's content digest";
    EXPECT_EQ(put.size, sizeof(std::uint64_t) + value.size() * sizeof(float));
  }
  cache_store reopened(dir.path());  // what one process stored, the next one finds
  std::vector<float> back;
  const cache_result r = reopened.load(key, [&](std::istream& in) { back = traits::load(in); });
  ASSERT_TRUE(r.hit()) << r.message;
  EXPECT_EQ(r.entry.type, traits::type_fingerprint());
  EXPECT_EQ(back, value);

  // Small writes through the stream's buffer hash the same as one big write.
  const digest small_key = key_of("stream", 1);
  const auto put = reopened.put(small_key,
                                [](std::ostream& out) {
                                  hasher h;
                                  for (int i = 0; i < 100'000; ++i) {
                                    out.put(static_cast<char>(i));
                                    const char c = static_cast<char>(i);
                                    h.update(&c, 1);
                                  }
                                  return h.finish();
                                },
                                {bytes_type, "run-2"});
  std::vector<std::byte> out;
  ASSERT_TRUE(reopened.get(small_key, out).hit());
  ASSERT_EQ(out.size(), 100'000u);
  EXPECT_EQ(put.content, digest_of(out));
}

TEST(cache_store, get_reads_into_the_callers_buffer) {
  scratch_directory dir;
  cache_store store(dir.path());
  std::vector<float> value(1 << 16, 3.0f);
  const digest key = key_of("in place");
  store.put(key, std::as_bytes(std::span(value)), {bytes_type, "r"});

  std::vector<float> back;
  const cache_result r = store.get(key, [&](const cache_entry& e) {
    back.resize(e.size / sizeof(float));
    return std::as_writable_bytes(std::span(back));
  });
  ASSERT_TRUE(r.hit()) << r.message;
  EXPECT_EQ(back, value);

  // A destination of the wrong size is the caller's mistake, and leaves no
  // in-use mark behind.
  std::vector<std::byte> small(3);
  EXPECT_THROW((void)store.get(key, [&](const cache_entry&) { return std::span<std::byte>(small); }),
               std::invalid_argument);
  const auto gc = store.gc({.max_bytes = 0});
  EXPECT_EQ(gc.skipped_in_use, 0u);
  EXPECT_EQ(gc.entries_removed, 1u);
}

TEST(cache_store, same_bytes_under_two_keys_are_stored_once) {
  scratch_directory dir;
  cache_store store(dir.path());
  const auto bytes = blob_value_for(7);
  const auto first = store.put(key_of("a"), bytes, {bytes_type, "r"});
  const auto second = store.put(key_of("b"), bytes, {bytes_type, "r"});
  const auto third =
      store.put(key_of("c"),
                [&](std::ostream& out) {
                  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
                  return digest_of(bytes);
                },
                {bytes_type, "r"});
  EXPECT_TRUE(first.wrote_blob);
  EXPECT_FALSE(second.wrote_blob);
  EXPECT_FALSE(third.wrote_blob);
  EXPECT_EQ(first.content, second.content);
  EXPECT_EQ(first.content, third.content);
  EXPECT_EQ(count_files(dir.path() / "blobs"), 1u) << "one blob, and no temporary file left";

  const auto stats = store.stats();
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_EQ(stats.blobs, 1u);
  EXPECT_EQ(stats.bytes, bytes.size());

  // Replacing what a key names.
  const auto other = blob_value_for(8);
  store.put(key_of("a"), other, {bytes_type, "r2"});
  std::vector<std::byte> out;
  const auto r = store.get(key_of("a"), out);
  ASSERT_TRUE(r.hit());
  EXPECT_EQ(out, other);
  EXPECT_EQ(r.entry.run_id, "r2");
  EXPECT_EQ(store.stats().blobs, 2u);
  EXPECT_EQ(count_files(dir.path() / "blobs"), 2u);
  EXPECT_TRUE(store.erase(key_of("a")));
  EXPECT_FALSE(store.erase(key_of("a")));
  EXPECT_EQ(count_files(dir.path() / "blobs"), 2u) << "erase leaves the blob to gc";
  EXPECT_EQ(store.gc({}).orphans_removed, 1u) << "the blob of 'other'; the first is still named by b and c";
  EXPECT_EQ(count_files(dir.path() / "blobs"), 1u);
}

TEST(cache_store, failing_writers_leave_nothing_behind) {
  scratch_directory dir;
  cache_store store(dir.path());
  const digest key = key_of("failing");
  EXPECT_THROW(store.put(key,
                         [](std::ostream& out) -> digest {
                           out << "half a value";
                           throw std::runtime_error("step serializer failed");
                         },
                         {bytes_type, "r"}),
               cache_error);
  try {
    store.put(key,
              [](std::ostream& out) {
                out << "some bytes";
                return digest{1, 2};
              },
              {bytes_type, "r"});
    ADD_FAILURE() << "a save function returning the wrong digest must be an error";
  } catch (const cache_error& e) {
    EXPECT_NE(std::string(e.what()).find(key.hex()), std::string::npos) << e.what();
  }
  EXPECT_EQ(store.lookup(key).status, cache_status::absent);
  EXPECT_EQ(count_temporaries(dir.path()), 0u);

  // A failing deserializer is reported with the key and the blob.
  store.put(key, value_for(1), {bytes_type, "r"});
  try {
    (void)store.load(key, [](std::istream&) { throw std::runtime_error("bad archive"); });
    ADD_FAILURE() << "expected cache_error";
  } catch (const cache_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(key.hex()), std::string::npos) << what;
    EXPECT_NE(what.find("bad archive"), std::string::npos) << what;
  }
  EXPECT_THROW((void)store.load(key, [](std::istream&) { throw 42; }), cache_error) << "whatever it throws";
}

// A save function that throws, whatever it throws and whether its value was
// still in memory or already in a temporary file: a cache_error naming the
// key and saying what the function said (the original nested), no
// temporary left, the lease still held, and the store usable.
TEST(cache_store, a_failing_save_function_is_a_cache_error_and_leaves_the_store_usable) {
  scratch_directory dir;
  cache_store store(dir.path());
  struct not_a_std_exception {};
  int n = 0;
  for (const std::size_t size : {std::size_t{100}, 3 * cache_inline_max}) {
    for (const std::string_view kind : {"runtime_error", "bad_alloc", "not a std::exception"}) {
      SCOPED_TRACE(std::string(kind) + ", " + std::to_string(size) + " bytes");
      const digest key = key_of("failing save", static_cast<std::uint64_t>(n++));
      const std::vector<std::byte> bytes(size, std::byte{0x5a});
      auto attempt = store.try_acquire(key, 60s);
      ASSERT_EQ(attempt.status, lease_status::acquired);
      std::size_t temporaries_while_writing = 0;
      try {
        (void)store.put(
            key,
            [&](std::ostream& out) -> digest {
              out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
              out.flush();
              temporaries_while_writing = count_temporaries(dir.path());
              if (kind == "runtime_error") throw std::runtime_error("the serializer failed");
              if (kind == "bad_alloc") throw std::bad_alloc();
              throw not_a_std_exception{};
            },
            {bytes_type, "r"}, &attempt.lease);
        ADD_FAILURE() << "expected cache_error";
      } catch (const cache_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(key.hex()), std::string::npos) << what;
        EXPECT_NE(what.find(kind == "runtime_error" ? "the serializer failed" : "save function"), std::string::npos)
            << what;
        bool nested = false;
        try {
          std::rethrow_if_nested(e);
        } catch (const std::runtime_error&) {
          nested = kind == "runtime_error";
        } catch (const std::bad_alloc&) {
          nested = kind == "bad_alloc";
        } catch (const not_a_std_exception&) {
          nested = kind == "not a std::exception";
        }
        EXPECT_TRUE(nested) << "the original exception is nested";
      }
      EXPECT_EQ(temporaries_while_writing, size > cache_inline_max ? 1u : 0u);
      EXPECT_EQ(count_temporaries(dir.path()), 0u) << "the temporary is removed";
      EXPECT_TRUE(attempt.lease.held()) << "the lease stays held";
      EXPECT_EQ(store.lookup(key).status, cache_status::absent);
      store.put(key, bytes, {bytes_type, "r"}, &attempt.lease);
      EXPECT_FALSE(attempt.lease.held());
      std::vector<std::byte> out;
      ASSERT_TRUE(store.get(key, out).hit());
      EXPECT_EQ(out, bytes);
    }
  }
}

// A disk that refuses the bytes (here RLIMIT_FSIZE: write() fails with
// EFBIG, as it would with ENOSPC) while a value is written: a cache_error
// that names the temporary file and the errno, whether the save function
// saw a short sputn and threw its own exception (as cereal does), or wrote
// through the stream; then no temporary is left and small values still work.
TEST(cache_store, a_disk_that_refuses_a_value_is_a_cache_error_and_leaves_no_temporary) {
  scratch_directory dir;
  { cache_store create(dir.path()); }
  const pid_t child = spawn([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{512 << 10, 512 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 10;
    cache_store store(dir.path());
    const std::vector<std::byte> big(2 << 20, std::byte{1});
    const char* data = reinterpret_cast<const char*>(big.data());
    const auto size = static_cast<std::streamsize>(big.size());
    int refused = 0;
    const auto expect_refusal = [&](const char* how, auto&& put) {
      try {
        put();
        std::fprintf(stderr, "%s: stored past the file size limit\n", how);
      } catch (const cache_error& e) {
        if (std::string(e.what()).find(std::generic_category().message(EFBIG)) != std::string::npos) {
          ++refused;
        } else {
          std::fprintf(stderr, "%s: %s\n", how, e.what());
        }
      }
    };
    expect_refusal("sputn", [&] {
      (void)store.put(key_of("too large", 1),
                      [&](std::ostream& out) -> digest {
                        if (out.rdbuf()->sputn(data, size) != size)
                          throw std::runtime_error("Failed to write bytes to stream");
                        return digest_of(big);
                      },
                      {bytes_type, "r"});
    });
    expect_refusal("ostream::write", [&] {
      (void)store.put(key_of("too large", 2),
                      [&](std::ostream& out) {
                        out.write(data, size);
                        return digest_of(big);
                      },
                      {bytes_type, "r"});
    });
    expect_refusal("contiguous", [&] { (void)store.put(key_of("too large", 3), big, {bytes_type, "r"}); });
    if (count_temporaries(dir.path()) != 0) return 3;
    const auto small = inline_value_for(4);
    store.put(key_of("small"), small, {bytes_type, "r"});
    std::vector<std::byte> out;
    if (!store.get(key_of("small"), out).hit() || out != small) return 4;
    return refused == 3 ? 0 : 1;
  });
  EXPECT_EQ(wait_for(child), 0);
}

TEST(cache_store, default_directory_is_penstock_home_or_dot_penstock) {
  const char* saved = std::getenv("PENSTOCK_HOME");
  const std::string saved_value = saved != nullptr ? saved : "";
  ::setenv("PENSTOCK_HOME", "/some/where", 1);
  EXPECT_EQ(penstock::detail::r1::default_cache_directory(), fs::path("/some/where"));
  ::setenv("PENSTOCK_HOME", "", 1);
  EXPECT_EQ(penstock::detail::r1::default_cache_directory(), fs::current_path() / ".penstock");
  ::unsetenv("PENSTOCK_HOME");
  EXPECT_EQ(penstock::detail::r1::default_cache_directory(), fs::current_path() / ".penstock");
  if (saved != nullptr) ::setenv("PENSTOCK_HOME", saved_value.c_str(), 1);
}

TEST(cache_store, unusable_directory_or_index_is_an_error_naming_the_file) {
  scratch_directory dir;
  const fs::path file = dir.path() / "a-file";
  std::ofstream(file) << "not a directory";
  EXPECT_THROW(cache_store{file}, cache_error);

  const fs::path cache = dir.path() / "cache";
  fs::create_directories(cache);
  std::ofstream(cache / "index.sqlite") << std::string(4096, 'x');
  try {
    cache_store store(cache);
    ADD_FAILURE() << "expected cache_error";
  } catch (const cache_error& e) {
    EXPECT_NE(std::string(e.what()).find((cache / "index.sqlite").string()), std::string::npos) << e.what();
  }
}

// ---- damage is a reported miss -----------------------------------------------

namespace {

// What a damage report names besides the key.
enum class named { blob, index, key_only };

// Puts one value, damages it, and checks that get() reports it as `expected`
// with a message naming the key and the blob (digest and file) or the index;
// that the damaged blob and row are gone; and that the value can be stored
// and read again.
template <class Damage>
void expect_reported_miss(cache_status expected, Damage&& damage, named names = named::blob) {
  scratch_directory dir;
  cache_store store(dir.path());
  const digest key = key_of("damaged");
  const auto bytes = blob_value_for(key);
  const auto put = store.put(key, bytes, {bytes_type, "r"});
  const fs::path blob = store.blob_path(put.content);
  damage(store, key, blob);

  std::vector<std::byte> out;
  const cache_result r = store.get(key, out);
  EXPECT_EQ(r.status, expected) << r.message;
  EXPECT_NE(r.message.find(key.hex()), std::string::npos) << r.message;
  if (names == named::blob) {
    EXPECT_NE(r.message.find(put.content.hex()), std::string::npos) << r.message;
    EXPECT_NE(r.message.find(blob.string()), std::string::npos) << r.message;
    EXPECT_FALSE(fs::exists(blob)) << "the bad blob is removed";
  } else if (names == named::index) {
    EXPECT_NE(r.message.find(store.index_path().string()), std::string::npos) << r.message;
  }
  EXPECT_EQ(store.lookup(key).status, cache_status::absent) << "and so is its row";
  EXPECT_EQ(store.get(key, out).status, cache_status::absent) << "a reported miss is reported once";

  store.put(key, bytes, {bytes_type, "again"});  // the recompute
  const cache_result again = store.get(key, out);
  ASSERT_TRUE(again.hit()) << again.message;
  EXPECT_EQ(out, bytes);
}

}  // namespace

TEST(cache_store_damage, flipped_byte_is_a_corrupt_blob) {
  expect_reported_miss(cache_status::blob_corrupt, [](cache_store&, const digest&, const fs::path& blob) {
    make_writable(blob);
    std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(517);
    char c = 0;
    f.get(c);
    f.seekp(517);
    f.put(static_cast<char>(c ^ 0x10));
  });
}

// From 8 MiB on, put() hashes on a second thread while it writes and get()
// hashes on one while it reads: the same digests, the same dedup, the same
// detection of a damaged byte near the end.
TEST(cache_store_damage, large_values_hashed_beside_the_io_dedup_and_detect_damage) {
  scratch_directory dir;
  cache_store store(dir.path());
  std::vector<std::byte> bytes((9 << 20) + 3);
  std::mt19937_64 random(17);
  for (auto& b : bytes) b = static_cast<std::byte>(random());
  const auto first = store.put(key_of("large", 1), bytes, {bytes_type, "r"});
  EXPECT_EQ(first.content, digest_of(bytes));
  EXPECT_TRUE(first.wrote_blob);
  const auto again = store.put(key_of("large", 2), bytes, {bytes_type, "r"});
  EXPECT_EQ(again.content, first.content);
  EXPECT_FALSE(again.wrote_blob) << "the blob was stored already";
  EXPECT_EQ(count_files(dir.path() / "blobs"), 1u) << "one blob, and no temporary file left";

  std::vector<std::byte> out;
  const auto got = store.get(key_of("large", 2), out);
  ASSERT_TRUE(got.hit()) << got.message;
  EXPECT_EQ(out, bytes);

  // Into parts at odd addresses (read through the realigning buffer): 3
  // bytes, then the rest one byte past an aligned address.
  std::vector<std::byte> head(3);
  std::vector<std::byte> tail(bytes.size() - 3 + 1);
  const auto parts = store.get_parts(key_of("large", 1), [&](const penstock::detail::r1::cache_entry& e) {
    EXPECT_EQ(e.size, bytes.size());
    return std::vector{std::span(head), std::span(tail).subspan(1)};
  });
  ASSERT_TRUE(parts.hit()) << parts.message;
  EXPECT_TRUE(std::equal(head.begin(), head.end(), bytes.begin()));
  EXPECT_TRUE(std::equal(tail.begin() + 1, tail.end(), bytes.begin() + 3));
  EXPECT_THROW(
      (void)store.get_parts(key_of("large", 1),
                            [&](const penstock::detail::r1::cache_entry&) { return std::vector{std::span(head)}; }),
      std::invalid_argument)
      << "parts that do not add up to the value";

  const fs::path blob = store.blob_path(first.content);
  make_writable(blob);
  {
    std::fstream f(blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(bytes.size() - 2));
    f.put(static_cast<char>(std::to_integer<char>(bytes[bytes.size() - 2]) ^ 0x01));
  }
  const auto damaged = store.get(key_of("large", 1), out);
  EXPECT_EQ(damaged.status, cache_status::blob_corrupt) << damaged.message;
  EXPECT_FALSE(fs::exists(blob));
  EXPECT_EQ(store.get(key_of("large", 2), out).status, cache_status::absent) << "the rows naming the blob went too";
}

TEST(cache_store_damage, truncated_blob) {
  expect_reported_miss(cache_status::blob_truncated, [](cache_store&, const digest&, const fs::path& blob) {
    make_writable(blob);
    fs::resize_file(blob, fs::file_size(blob) / 2);
  });
}

TEST(cache_store_damage, empty_blob) {
  expect_reported_miss(cache_status::blob_truncated, [](cache_store&, const digest&, const fs::path& blob) {
    make_writable(blob);
    fs::resize_file(blob, 0);
  });
}

TEST(cache_store_damage, blob_with_bytes_appended) {
  expect_reported_miss(cache_status::blob_truncated, [](cache_store&, const digest&, const fs::path& blob) {
    make_writable(blob);
    std::ofstream(blob, std::ios::app | std::ios::binary) << "tail";
  });
}

TEST(cache_store_damage, deleted_blob) {
  expect_reported_miss(cache_status::blob_missing,
                       [](cache_store&, const digest&, const fs::path& blob) { fs::remove(blob); });
}

TEST(cache_store_damage, blob_replaced_by_a_directory) {
  expect_reported_miss(cache_status::blob_corrupt, [](cache_store&, const digest&, const fs::path& blob) {
    fs::remove(blob);
    fs::create_directory(blob);
  });
}

TEST(cache_store_damage, index_row_wrong_size_claims_truncation) {
  expect_reported_miss(cache_status::blob_truncated, [](cache_store& store, const digest& key, const fs::path&) {
    damage_index(store.index_path(), "UPDATE entries SET size = size + 1 WHERE key = ?1", key);
  });
}

TEST(cache_store_damage, index_row_naming_another_digest) {
  expect_reported_miss(
      cache_status::blob_missing,
      [](cache_store& store, const digest& key, const fs::path&) {
        damage_index(store.index_path(), "UPDATE entries SET digest = randomblob(16) WHERE key = ?1", key);
      },
      named::key_only);
}

TEST(cache_store_damage, garbage_in_the_index_row) {
  for (const char* sql : {
           "UPDATE entries SET digest = x'0102' WHERE key = ?1",
           "UPDATE entries SET digest = 'not a digest' WHERE key = ?1",
           "UPDATE entries SET size = 'large' WHERE key = ?1",
           "UPDATE entries SET size = -5 WHERE key = ?1",
           "UPDATE entries SET size = 3.5 WHERE key = ?1",
           "UPDATE entries SET type = zeroblob(3) WHERE key = ?1",
           "UPDATE entries SET run_id = x'00ff' WHERE key = ?1",
           "UPDATE entries SET last_used = 'yesterday' WHERE key = ?1",
       }) {
    SCOPED_TRACE(sql);
    expect_reported_miss(
        cache_status::index_corrupt,
        [sql](cache_store& store, const digest& key, const fs::path&) { damage_index(store.index_path(), sql, key); },
        named::index);
  }
}

TEST(cache_store_damage, garbage_rows_are_reported_by_lookup_and_removed_by_gc) {
  scratch_directory dir;
  cache_store store(dir.path());
  for (int i = 0; i < 3; ++i) store.put(key_of("row", i), blob_value_for(i), {bytes_type, "r"});
  damage_index(store.index_path(), "UPDATE entries SET type = 'text' WHERE key = ?1", key_of("row", 0));
  damage_index(store.index_path(), "UPDATE entries SET key = x'01' WHERE key = ?1", key_of("row", 1));
  const cache_result r = store.lookup(key_of("row", 0));
  EXPECT_EQ(r.status, cache_status::index_corrupt);
  EXPECT_NE(r.message.find(key_of("row", 0).hex()), std::string::npos) << r.message;
  EXPECT_EQ(store.lookup(key_of("row", 0)).status, cache_status::absent);
  damage_index(store.index_path(), "UPDATE entries SET size = 'big' WHERE key = ?1", key_of("row", 2));
  const digest batch[] = {key_of("row", 2), key_of("row", 3)};
  const auto many = store.lookup(batch);
  EXPECT_EQ(many[0].status, cache_status::index_corrupt);
  EXPECT_NE(many[0].message.find(key_of("row", 2).hex()), std::string::npos) << many[0].message;
  EXPECT_EQ(many[1].status, cache_status::absent);
  store.put(key_of("row", 2), blob_value_for(2), {bytes_type, "r"});

  const auto gc = store.gc({});
  EXPECT_EQ(gc.bad_rows_removed, 1u) << "the row whose key is not a key";
  EXPECT_EQ(gc.orphans_removed, 2u) << "the blobs no row names any more";
  EXPECT_TRUE(store.lookup(key_of("row", 2)).hit());
  EXPECT_EQ(store.stats().entries, 1u);
}

TEST(cache_store_damage, a_corrupt_blob_shared_by_two_keys_is_a_miss_for_both) {
  scratch_directory dir;
  cache_store store(dir.path());
  const auto bytes = blob_value_for(3);
  const auto put = store.put(key_of("x"), bytes, {bytes_type, "r"});
  store.put(key_of("y"), bytes, {bytes_type, "r"});
  make_writable(store.blob_path(put.content));
  std::ofstream(store.blob_path(put.content), std::ios::binary | std::ios::trunc)
      << std::string(bytes.size(), 'z');  // same size, other bytes

  std::vector<std::byte> out;
  EXPECT_EQ(store.get(key_of("x"), out).status, cache_status::blob_corrupt);
  EXPECT_EQ(store.get(key_of("y"), out).status, cache_status::absent) << "y's row went with the blob";
  EXPECT_FALSE(fs::exists(store.blob_path(put.content)));
}

// ---- writers killed at any point --------------------------------------------

namespace {

// Writers of values of 1 KiB .. 1 KiB + max_size, killed at any point.
void kill_writers(int iterations, std::size_t max_size) {
  scratch_directory dir;
  constexpr int entries_per_child = 24;
  for (int it = 0; it < iterations; ++it) {
    // The child reports 'h' half-way through each streamed value and 'd' when
    // a put returned; it is killed after `messages` reports, so the kill lands
    // before the store exists, mid-write, mid-publish, or between entries.
    const int messages = (it * 7) % 23;
    auto key_at = [it](int j) {
      return key_of("crash", static_cast<std::uint64_t>(it), static_cast<std::uint64_t>(j));
    };
    // Pairs of entries share their bytes, so the "blob already there" path is killed too.
    auto value_at = [it, max_size](int j) {
      return value_for(static_cast<std::uint64_t>(it * 1000 + j / 2), max_size);
    };
    channel progress;
    const pid_t child = spawn([&] {
      progress.close_read();
      cache_store store(dir.path());
      for (int j = 0; j < entries_per_child; ++j) {
        const auto bytes = value_at(j);
        if (j % 3 == 0) {
          store.put(key_at(j), bytes, {bytes_type, "crash"});
        } else {
          store.put(key_at(j),
                    [&](std::ostream& out) {
                      const auto half = static_cast<std::streamsize>(bytes.size() / 2);
                      out.write(reinterpret_cast<const char*>(bytes.data()), half);
                      out.flush();
                      progress.send('h');
                      out.write(reinterpret_cast<const char*>(bytes.data()) + half,
                                static_cast<std::streamsize>(bytes.size()) - half);
                      return digest_of(bytes);
                    },
                    {bytes_type, "crash"});
        }
        progress.send('d');
      }
      return 0;
    });
    progress.close_write();
    int completed = 0;
    for (int m = 0; m < messages; ++m) {
      const char c = progress.receive();
      ASSERT_NE(c, 0) << "the writer ended early";
      if (c == 'd') ++completed;
    }
    ::kill(child, SIGKILL);
    ASSERT_EQ(wait_for(child), 128 + SIGKILL);

    cache_store store(dir.path());
    std::vector<std::byte> out;
    for (int j = 0; j < entries_per_child; ++j) {
      const cache_result r = store.get(key_at(j), out);
      ASSERT_TRUE(r.status == cache_status::hit || r.status == cache_status::absent)
          << "iteration " << it << ", entry " << j << ": " << r.message;
      if (r.hit()) {
        ASSERT_EQ(out, value_at(j)) << "iteration " << it << ", entry " << j;
      }
      if (j < completed) {
        ASSERT_TRUE(r.hit()) << "a put that returned survives its process; iteration " << it;
      }
    }
    if (it % 10 == 9) {
      // The dead writers' temporary files and unindexed blobs are collected.
      store.gc({});
      EXPECT_EQ(count_temporaries(dir.path()), 0u) << "iteration " << it;
    }
  }
}

}  // namespace

TEST(cache_store_crash, a_killed_writer_never_leaves_an_entry_that_reads_back_wrong) {
  kill_writers(60, 128 << 10);  // inline values and blob files
}

TEST(cache_store_crash, a_killed_writer_of_inline_values_never_leaves_an_entry_that_reads_back_wrong) {
  kill_writers(40, cache_inline_max - 1024);
}

// ---- several processes, one directory ----------------------------------------

TEST(cache_store_processes, four_processes_compute_each_key_exactly_once) {
  scratch_directory dir;
  const fs::path log = dir.path() / "computations.log";
  constexpr int processes = 4;
  constexpr int keys = 48;
  channel start;
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    children.push_back(spawn([&, p] {
      start.close_write();
      if (start.receive() != 0) return 10;  // every process starts when the parent closes the pipe
      cache_store store(dir.path());        // they also race to create the cache
      const int log_fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (log_fd < 0) return 11;
      std::vector<int> order(keys);
      for (int j = 0; j < keys; ++j)
        order[static_cast<std::size_t>(j)] = (p % 2 == 0) ? (j + p * 5) % keys : keys - 1 - j;
      std::vector<std::byte> out;
      for (int j : order) {
        const digest key = key_of("shared", static_cast<std::uint64_t>(j));
        auto attempt = store.acquire_or_wait(key, 60s, 60s);
        if (attempt.status == lease_status::acquired) {
          const std::string line = std::to_string(j) + " " + std::to_string(::getpid()) + "\n";
          if (::write(log_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 12;
          store.put(key, value_for(key), {bytes_type, std::to_string(::getpid())});
          if (!attempt.lease.release()) return 13;
        } else if (attempt.status != lease_status::cached) {
          return 14;  // timed out
        }
        const cache_result r = store.get(key, out);
        if (!r.hit() || out != value_for(key)) return 15;
      }
      ::close(log_fd);
      return 0;
    }));
  }
  start.close_write();
  for (const pid_t child : children) EXPECT_EQ(wait_for(child), 0);

  std::map<int, int> computed;
  std::ifstream in(log);
  int j = 0;
  long writer = 0;
  while (in >> j >> writer) ++computed[j];
  ASSERT_EQ(computed.size(), static_cast<std::size_t>(keys));
  for (const auto& [k, n] : computed) EXPECT_EQ(n, 1) << "key " << k << " computed " << n << " times";

  cache_store store(dir.path());
  std::vector<std::byte> out;
  for (int k = 0; k < keys; ++k) {
    const digest key = key_of("shared", static_cast<std::uint64_t>(k));
    ASSERT_TRUE(store.get(key, out).hit());
    EXPECT_EQ(out, value_for(key));
  }
  EXPECT_EQ(store.stats().leases, 0u) << "every lease was released";
}

TEST(cache_store_processes, four_threads_with_their_own_stores_compute_each_key_once) {
  scratch_directory dir;
  constexpr int threads = 4;
  constexpr int keys = 32;
  std::vector<std::atomic<int>> computed(keys);
  std::atomic<int> failures{0};
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      cache_store store(dir.path());
      start.arrive_and_wait();
      std::vector<std::byte> out;
      for (int i = 0; i < keys; ++i) {
        const int j = (i + t * 7) % keys;
        const digest key = key_of("threads", static_cast<std::uint64_t>(j));
        auto attempt = store.acquire_or_wait(key, 60s, 60s);
        if (attempt.status == lease_status::acquired) {
          computed[static_cast<std::size_t>(j)].fetch_add(1);
          store.put(key, value_for(key), {bytes_type, "threads"});
        } else if (attempt.status != lease_status::cached) {
          failures.fetch_add(1);
        }
        attempt.lease.release();
        if (!store.get(key, out).hit() || out != value_for(key)) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int j = 0; j < keys; ++j) EXPECT_EQ(computed[static_cast<std::size_t>(j)].load(), 1) << "key " << j;
}

TEST(cache_store_processes, one_store_shared_by_threads) {
  scratch_directory dir;
  cache_store store(dir.path());
  constexpr int threads = 4;
  std::atomic<int> failures{0};
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      std::vector<std::byte> out;
      for (int i = 0; i < 40; ++i) {
        const digest key = key_of("one store", static_cast<std::uint64_t>((i * 3 + t) % 12));
        switch ((i + t) % 4) {
          case 0: store.put(key, value_for(key), {bytes_type, "t"}); break;
          case 1:
            if (const auto r = store.get(key, out);
                !(r.hit() || r.status == cache_status::absent) || (r.hit() && out != value_for(key))) {
              failures.fetch_add(1);
            }
            break;
          case 2: (void)store.lookup(key); break;
          case 3: store.gc({.max_bytes = 1 << 20}); break;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// ---- leases -------------------------------------------------------------------

TEST(cache_store_leases, one_owner_at_a_time_and_cached_once_stored) {
  scratch_directory dir;
  cache_store mine(dir.path());
  cache_store theirs(dir.path());
  const digest key = key_of("lease");

  auto first = mine.try_acquire(key, 60s);
  ASSERT_EQ(first.status, lease_status::acquired);
  EXPECT_TRUE(first.lease.held());
  EXPECT_TRUE(first.holder.empty());
  const auto second = theirs.try_acquire(key, 60s);
  EXPECT_EQ(second.status, lease_status::held);
  EXPECT_FALSE(second.lease.held());
  EXPECT_NE(second.holder.find(std::to_string(::getpid())), std::string::npos) << second.holder;
  EXPECT_EQ(mine.try_acquire(key, 60s).status, lease_status::held) << "not re-entrant";
  EXPECT_TRUE(first.lease.renew(120s));

  EXPECT_TRUE(first.lease.release());
  EXPECT_FALSE(first.lease.release()) << "idempotent";
  {
    auto third = theirs.try_acquire(key, 60s);
    ASSERT_EQ(third.status, lease_status::acquired);
  }  // released by its destructor
  auto fourth = mine.try_acquire(key, 60s);
  ASSERT_EQ(fourth.status, lease_status::acquired);
  mine.put(key, value_for(1), {bytes_type, "r"});
  EXPECT_EQ(theirs.try_acquire(key, 60s).status, lease_status::cached);
  fourth.lease.release();
  EXPECT_EQ(theirs.acquire_or_wait(key, 60s, 10s).status, lease_status::cached);
  EXPECT_EQ(mine.stats().leases, 0u);
}

TEST(cache_store_leases, expired_lease_is_taken_over) {
  scratch_directory dir;
  cache_store now(dir.path());
  cache_store later(dir.path(), {.clock = [] { return std::chrono::system_clock::now() + 2h; }});
  const digest key = key_of("expiring");
  auto first = now.try_acquire(key, 3600s);
  ASSERT_EQ(first.status, lease_status::acquired);
  auto second = later.try_acquire(key, 60s);
  ASSERT_EQ(second.status, lease_status::acquired) << "an hour-long lease is stale two hours later";
  EXPECT_NE(second.holder.find("expired"), std::string::npos) << second.holder;
  EXPECT_FALSE(first.lease.renew(60s)) << "the first owner learns it lost the lease";
  EXPECT_FALSE(first.lease.release());
  EXPECT_EQ(now.try_acquire(key, 60s).status, lease_status::held) << "the new owner keeps it";
}

TEST(cache_store_leases, dead_owners_lease_is_taken_over) {
  scratch_directory dir;
  const digest key = key_of("orphaned lease");
  channel acquired;
  const pid_t child = spawn([&] {
    acquired.close_read();
    cache_store store(dir.path());
    auto attempt = store.try_acquire(key, 3600s);
    if (attempt.status != lease_status::acquired) return 1;
    acquired.send();
    ::_exit(0);  // dies holding the lease
  });
  acquired.close_write();
  ASSERT_EQ(acquired.receive(), 'x');
  // Wait until the child is a zombie, without reaping it: a zombie answers
  // kill(pid, 0), yet it is dead.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  {
    cache_store store(dir.path());
    auto attempt = store.try_acquire(key, 60s);
    EXPECT_EQ(attempt.status, lease_status::acquired) << "the owner is dead";
    EXPECT_NE(attempt.holder.find(std::to_string(child)), std::string::npos) << attempt.holder;
    EXPECT_NE(attempt.holder.find("process gone"), std::string::npos) << attempt.holder;
  }
  EXPECT_EQ(wait_for(child), 0);
}

TEST(cache_store_leases, waiting_ends_when_the_value_appears_or_the_time_is_up) {
  scratch_directory dir;
  cache_store owner(dir.path());
  cache_store waiter(dir.path());
  const digest key = key_of("awaited");
  auto lease = owner.try_acquire(key, 60s);
  ASSERT_EQ(lease.status, lease_status::acquired);
  EXPECT_EQ(waiter.acquire_or_wait(key, 60s, 5ms).status, lease_status::held);

  std::latch waiting(1);
  std::thread computer([&] {
    waiting.wait();
    owner.put(key, value_for(key), {bytes_type, "r"});
    lease.lease.release();
  });
  waiting.count_down();
  const auto attempt = waiter.acquire_or_wait(key, 60s, 60s);
  computer.join();
  EXPECT_EQ(attempt.status, lease_status::cached);
}

// ---- gc -----------------------------------------------------------------------

TEST(cache_store_gc, least_recently_used_go_first_until_the_budget_holds) {
  scratch_directory dir;
  cache_store store(dir.path(), {.touch_interval = 0s, .clock = {}});  // every use is recorded
  constexpr std::uint64_t n = cache_inline_max + 1000;                 // blob files
  std::vector<std::byte> bytes(n);
  for (int i = 0; i < 4; ++i) {
    bytes[0] = static_cast<std::byte>(i);
    store.put(key_of("lru", i), bytes, {bytes_type, "r"});
  }
  std::vector<std::byte> out;
  ASSERT_TRUE(store.get(key_of("lru", 0), out).hit());  // 0 is now the most recent
  const digest planned = key_of("lru", 1);
  store.touch(std::span(&planned, 1));  // and 1 after it

  const auto gc = store.gc({.max_bytes = 2 * n + n / 2});
  EXPECT_EQ(gc.entries_removed, 2u);
  EXPECT_EQ(gc.blobs_removed, 2u);
  EXPECT_EQ(gc.bytes_freed, 2 * n);
  EXPECT_EQ(store.lookup(key_of("lru", 2)).status, cache_status::absent);
  EXPECT_EQ(store.lookup(key_of("lru", 3)).status, cache_status::absent);
  EXPECT_TRUE(store.lookup(key_of("lru", 0)).hit());
  EXPECT_TRUE(store.lookup(key_of("lru", 1)).hit());
  const auto stats = store.stats();
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.bytes, 2 * n);
  EXPECT_EQ(count_files(dir.path() / "blobs"), 2u);

  EXPECT_EQ(store.gc({.max_bytes = 2 * n}).entries_removed, 0u) << "within budget";
}

TEST(cache_store_gc, a_shared_blob_stays_until_its_last_entry_goes) {
  scratch_directory dir;
  cache_store store(dir.path(), {.touch_interval = 0s, .clock = {}});
  const auto bytes = blob_value_for(5);
  const auto put = store.put(key_of("s", 1), bytes, {bytes_type, "r"});
  store.put(key_of("s", 2), bytes, {bytes_type, "r"});
  const digest one = key_of("s", 1);
  store.touch(std::span(&one, 1));
  // Removing s2 frees nothing; the budget still fails, so s1 goes too.
  const auto gc = store.gc({.max_bytes = bytes.size() - 1});
  EXPECT_EQ(gc.entries_removed, 2u);
  EXPECT_EQ(gc.blobs_removed, 1u);
  EXPECT_FALSE(fs::exists(store.blob_path(put.content)));
}

TEST(cache_store_gc, old_entries_go_and_leased_keys_stay) {
  scratch_directory dir;
  {
    cache_store store(dir.path());
    store.put(key_of("old", 1), value_for(1), {bytes_type, "r"});
    store.put(key_of("old", 2), value_for(2), {bytes_type, "r"});
  }
  cache_store store(dir.path());
  auto lease = store.try_acquire(key_of("old", 3), 24h);
  ASSERT_EQ(lease.status, lease_status::acquired);
  store.put(key_of("old", 3), value_for(3), {bytes_type, "r"});  // computed, not yet released

  cache_store later(dir.path(), {.clock = [] { return std::chrono::system_clock::now() + 2h; }});
  EXPECT_EQ(later.gc({.max_age = 3h}).entries_removed, 0u);
  const auto gc = later.gc({.max_age = 1h});
  EXPECT_EQ(gc.entries_removed, 2u);
  EXPECT_EQ(gc.skipped_in_use, 1u) << "the leased key";
  EXPECT_TRUE(store.lookup(key_of("old", 3)).hit());
}

TEST(cache_store_gc, orphan_blobs_are_collected) {
  scratch_directory dir;
  cache_store store(dir.path());
  const auto bytes = value_for(9);
  const digest content = digest_of(bytes);
  const fs::path orphan = store.blob_path(content);
  fs::create_directories(orphan.parent_path());
  std::ofstream(orphan, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::ofstream(orphan.parent_path() / "README") << "not a blob: left alone";
  const auto gc = store.gc({});
  EXPECT_EQ(gc.orphans_removed, 1u);
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(orphan.parent_path() / "README"));
}

TEST(cache_store_gc, never_removes_the_blob_a_reader_is_reading) {
  scratch_directory dir;
  const digest key = key_of("being read");
  const auto bytes = blob_value_for(key);
  fs::path blob;
  {
    cache_store store(dir.path());
    blob = store.blob_path(store.put(key, bytes, {bytes_type, "r"}).content);
  }
  channel reading;
  channel collected;
  const pid_t child = spawn([&] {
    reading.close_read();
    collected.close_write();
    cache_store store(dir.path());
    std::vector<std::byte> out;
    // The destination callback runs after get() found the row and before it
    // opens the blob: the window in which an unprotected blob would vanish.
    const cache_result r = store.get(key, [&](const cache_entry& e) {
      reading.send();
      (void)collected.receive();  // the parent's gc has run
      out.resize(e.size);
      return std::span<std::byte>(out);
    });
    if (!r.hit()) {
      std::fprintf(stderr, "%s\n", r.message.c_str());
      return 1;
    }
    return out == bytes ? 0 : 2;
  });
  reading.close_write();
  collected.close_read();
  ASSERT_EQ(reading.receive(), 'x');
  {
    cache_store store(dir.path());
    const auto gc = store.gc({.max_bytes = 0, .max_age = 0ns});
    EXPECT_EQ(gc.entries_removed, 0u);
    EXPECT_EQ(gc.skipped_in_use, 1u);
    EXPECT_TRUE(fs::exists(blob));
  }
  collected.send();
  EXPECT_EQ(wait_for(child), 0);
  cache_store store(dir.path());
  const auto gc = store.gc({.max_bytes = 0});
  EXPECT_EQ(gc.entries_removed, 1u) << "once the reader is done, the entry can go";
  EXPECT_FALSE(fs::exists(blob));
}

TEST(cache_store_gc, readers_racing_a_collector_see_hits_or_clean_misses) {
  scratch_directory dir;
  constexpr int keys = 8;
  auto key_at = [](int j) { return key_of("race", static_cast<std::uint64_t>(j)); };
  {
    cache_store store(dir.path());
    for (int j = 0; j < keys; ++j) store.put(key_at(j), value_for(key_at(j)), {bytes_type, "r"});
  }
  channel done;
  const pid_t child = spawn([&] {
    done.close_read();
    cache_store store(dir.path());
    std::vector<std::byte> out;
    int hits = 0;
    for (int i = 0; i < 240; ++i) {
      const digest key = key_at(i % keys);
      const cache_result r = store.get(key, out);
      if (r.hit()) {
        ++hits;
        if (out != value_for(key)) return 2;
      } else if (r.status != cache_status::absent) {
        std::fprintf(stderr, "%s\n", r.message.c_str());
        return 1;
      }
    }
    return 0;
  });
  done.close_write();
  cache_store store(dir.path());
  int rounds = 0;
  int status = 0;
  pid_t finished = 0;
  // Collect hard and put back what was collected until the reader is done.
  while ((finished = ::waitpid(child, &status, WNOHANG)) == 0) {
    store.gc({.max_bytes = 3 * (256 << 10)});
    for (int j = 0; j < keys; ++j) {
      if (!store.lookup(key_at(j)).hit()) store.put(key_at(j), value_for(key_at(j)), {bytes_type, "r"});
    }
    ++rounds;
  }
  ASSERT_EQ(finished, child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_GT(rounds, 0);
}

namespace {

// Plants `count` entries, each naming its own small blob file, straight into
// a store's index (one transaction, no fsync): enough files for gc to take a
// while unlinking them. Entry i was last used at time i, so gc takes them in
// order. The blob files are hard links to one file (creating thousands of
// inodes is slow on some disks, and gc only unlinks them); missing ones are
// linked again, rows already there are written again.
digest planted_digest(int i) { return key_of("planted blob", static_cast<std::uint64_t>(i)); }

void plant_blob_entries(const fs::path& dir, int count) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "index.sqlite").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10'000);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_stmt* insert = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "INSERT OR REPLACE INTO entries(key, digest, size, type, run_id, created, last_used) "
                               "VALUES(?1, ?2, ?3, ?4, 'planted', ?5, ?5)",
                               -1, &insert, nullptr),
            SQLITE_OK);
  const auto bytes_of = [](const digest& d) {
    std::array<unsigned char, 16> out{};
    for (int i = 0; i < 8; ++i) {
      out[static_cast<std::size_t>(i)] = static_cast<unsigned char>(d.high >> (56 - 8 * i));
      out[static_cast<std::size_t>(8 + i)] = static_cast<unsigned char>(d.low >> (56 - 8 * i));
    }
    return out;
  };
  const auto type = bytes_of(bytes_type);
  const fs::path source = dir / "planted-blob";
  const std::string value = "a planted blob";
  if (!fs::exists(source)) std::ofstream(source, std::ios::binary) << value;
  for (int i = 0; i < count; ++i) {
    const digest content = planted_digest(i);
    const fs::path blob = dir / "blobs" / content.hex().substr(0, 2) / content.hex();
    fs::create_directories(blob.parent_path());
    if (!fs::exists(blob)) fs::create_hard_link(source, blob);
    const auto key = bytes_of(key_of("planted", static_cast<std::uint64_t>(i)));
    const auto digest_bytes = bytes_of(content);
    sqlite3_bind_blob(insert, 1, key.data(), 16, SQLITE_TRANSIENT);
    sqlite3_bind_blob(insert, 2, digest_bytes.data(), 16, SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert, 3, static_cast<sqlite3_int64>(value.size()));
    sqlite3_bind_blob(insert, 4, type.data(), 16, SQLITE_TRANSIENT);
    sqlite3_bind_int64(insert, 5, i + 1);
    ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_reset(insert);
  }
  sqlite3_finalize(insert);
  ASSERT_EQ(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

// The blob files that the rows of `dir`'s index name (inline values aside) and that are not there.
std::vector<std::string> rows_without_their_blob(const fs::path& dir) {
  std::vector<std::string> missing;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2((dir / "index.sqlite").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_busy_timeout(db, 10'000);
  sqlite3_stmt* select = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT hex(digest) FROM entries WHERE inline_value IS NULL", -1, &select, nullptr),
            SQLITE_OK);
  while (sqlite3_step(select) == SQLITE_ROW) {
    std::string hex = reinterpret_cast<const char*>(sqlite3_column_text(select, 0));
    std::transform(hex.begin(), hex.end(), hex.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!fs::exists(dir / "blobs" / hex.substr(0, 2) / hex)) missing.push_back(hex);
  }
  sqlite3_finalize(select);
  sqlite3_close(db);
  return missing;
}

}  // namespace

// `cache gc` killed (SIGKILL) at 20 points of its work, most of them while it
// unlinks blob files: every row left names a blob that is there. (An orphan
// blob is allowed: the next gc removes it.) The kill point is where the child
// has just unlinked a chosen blob (a bounded poll of that file), so it lands
// at a different place in the unlinking each time; every fifth kill is sent as
// soon as the store is open.
TEST(cache_store_gc, a_killed_collector_never_leaves_a_row_without_its_blob) {
  scratch_directory dir;
  constexpr int count = 2000;
  { cache_store create(dir.path()); }
  std::minstd_rand random(20261201);
  int killed_while_unlinking = 0;
  for (int it = 0; it < 20; ++it) {
    SCOPED_TRACE(it);
    plant_blob_entries(dir.path(), count);
    ASSERT_TRUE(rows_without_their_blob(dir.path()).empty());
    // The blob whose disappearance triggers the kill: the k-th that gc takes.
    const digest watched = planted_digest(static_cast<int>(random() % count));
    const fs::path watched_path = dir.path() / "blobs" / watched.hex().substr(0, 2) / watched.hex();
    channel opened;
    const pid_t child = spawn([&] {
      opened.close_read();
      cache_store store(dir.path());
      opened.send();
      (void)store.gc({.max_bytes = 0});
      return 0;
    });
    opened.close_write();
    ASSERT_EQ(opened.receive(), 'x') << "the collector did not open the store";
    if (it % 5 != 0) {
      // Until the watched blob is gone or the collector has finished (bounded:
      // gc ends). The pause leaves the collector the CPU; it orders nothing.
      int status = 0;
      while (fs::exists(watched_path) && ::waitpid(child, &status, WNOHANG) == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      if (!fs::exists(watched_path)) ++killed_while_unlinking;
    }
    ::kill(child, SIGKILL);
    const int code = wait_for(child);
    ASSERT_TRUE(code == 128 + SIGKILL || code == 0) << code;
    const std::vector<std::string> missing = rows_without_their_blob(dir.path());
    EXPECT_TRUE(missing.empty()) << missing.size() << " rows name a blob that gc removed, e.g. " << missing.front();
    if (!missing.empty()) break;
  }
  EXPECT_GT(killed_while_unlinking, 0) << "no kill landed while gc was unlinking blobs";
  // The next gc finds a consistent cache, and leaves nothing behind.
  cache_store store(dir.path());
  store.gc({.max_bytes = 0});
  EXPECT_EQ(store.stats().entries, 0u);
  EXPECT_EQ(count_files(dir.path() / "blobs"), 0u);
}

// ---- run and step records -----------------------------------------------------

namespace {

using penstock::detail::r1::run_record;
using penstock::detail::r1::step_record;
using sys_time = std::chrono::system_clock::time_point;

// A fixed point in time, so that records compare exactly.
const sys_time t0 = sys_time(std::chrono::duration_cast<sys_time::duration>(1'790'000'000'000'000'000ns));

run_record run_of(std::string pipeline, std::string id, sys_time started, std::uint64_t seed = 0) {
  run_record r;
  r.run_id = std::move(id);
  r.pipeline = std::move(pipeline);
  r.started = started;
  r.wall = std::chrono::nanoseconds(1'234'567'891 + seed);
  r.steps = 10 + seed;
  r.hits = 6 + seed;
  r.computed = 3 + seed;
  r.reported_misses = 1 + seed;
  r.failed = seed;
  return r;
}

void expect_same_run(const std::optional<run_record>& got, const run_record& want) {
  ASSERT_TRUE(got.has_value()) << "expected run " << want.run_id;
  EXPECT_EQ(got->run_id, want.run_id);
  EXPECT_EQ(got->pipeline, want.pipeline);
  EXPECT_EQ(got->started, want.started);
  EXPECT_EQ(got->wall, want.wall);
  EXPECT_EQ(got->steps, want.steps);
  EXPECT_EQ(got->hits, want.hits);
  EXPECT_EQ(got->computed, want.computed);
  EXPECT_EQ(got->reported_misses, want.reported_misses);
  EXPECT_EQ(got->failed, want.failed);
}

step_record step_of(std::string pipeline, std::string step, std::string run_id, sys_time when,
                    std::string components = "{}") {
  const digest key = key_of("step key", static_cast<std::uint64_t>(when.time_since_epoch().count()));
  return {.pipeline = std::move(pipeline),
          .step = std::move(step),
          .key = key,
          .components = std::move(components),
          .run_id = std::move(run_id),
          .when = when};
}

// Runs SQL statements on an index behind the store's back.
void exec_sql(const fs::path& index, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(index.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10'000);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "") << "\n" << sql;
  sqlite3_free(error);
  sqlite3_close(db);
}

// The first column of the first row of a query, as an integer (-1: no row).
std::int64_t query_integer(const fs::path& index, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(index.c_str(), &db) != SQLITE_OK) return -2;
  sqlite3_busy_timeout(db, 10'000);
  sqlite3_stmt* statement = nullptr;
  std::int64_t value = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
      sqlite3_step(statement) == SQLITE_ROW) {
    value = sqlite3_column_int64(statement, 0);
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return value;
}

}  // namespace

TEST(cache_store_records, a_run_record_round_trips) {
  scratch_directory dir;
  const run_record run = run_of("churn", "run-1", t0, 7);
  {
    cache_store store(dir.path());
    EXPECT_FALSE(store.last_run().has_value()) << "no run recorded yet";
    EXPECT_FALSE(store.last_run("churn").has_value());
    store.record_run(run);
    expect_same_run(store.last_run("churn"), run);
  }
  cache_store store(dir.path());  // and it is in the index, not in memory
  expect_same_run(store.last_run("churn"), run);
  expect_same_run(store.last_run(), run);
  EXPECT_FALSE(store.last_run("other").has_value());

  run_record huge = run_of("churn", "run-huge", t0 + 1s);
  huge.steps = std::numeric_limits<std::uint64_t>::max();  // counts are stored bit for bit
  huge.wall = std::chrono::nanoseconds::max();
  store.record_run(huge);
  expect_same_run(store.last_run("churn"), huge);

  EXPECT_THROW(store.record_run(run_of("churn", "", t0)), std::invalid_argument);
}

TEST(cache_store_records, one_row_per_run_id) {
  scratch_directory dir;
  cache_store store(dir.path());
  store.record_run(run_of("p", "run-1", t0, 1));
  const run_record again = run_of("p", "run-1", t0 + 5s, 2);
  store.record_run(again);
  expect_same_run(store.last_run("p"), again);
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs"), 1);
}

TEST(cache_store_records, last_run_is_the_latest_started_of_the_pipeline_or_of_any) {
  scratch_directory dir;
  cache_store store(dir.path());
  const run_record a_late = run_of("a", "a-late", t0 + 30s, 1);
  const run_record b_latest = run_of("b", "b-latest", t0 + 40s, 2);
  // Recorded out of order: a long run that started first finishes last.
  store.record_run(a_late);
  store.record_run(b_latest);
  store.record_run(run_of("a", "a-early", t0 + 10s, 3));
  store.record_run(run_of("b", "b-early", t0, 4));
  expect_same_run(store.last_run("a"), a_late);
  expect_same_run(store.last_run("b"), b_latest);
  expect_same_run(store.last_run(), b_latest);
  expect_same_run(store.last_run(""), b_latest);

  // Equal start times: the last recorded wins.
  const run_record tie = run_of("a", "a-tie", t0 + 30s, 5);
  store.record_run(tie);
  expect_same_run(store.last_run("a"), tie);
}

TEST(cache_store_records, run_rows_are_bounded_but_each_pipelines_latest_stays) {
  scratch_directory dir;
  cache_store_options options;
  options.runs_kept = 5;
  cache_store store(dir.path(), options);
  const run_record rare = run_of("rare", "rare-1", t0 - 100h);
  store.record_run(rare);
  for (int i = 0; i < 12; ++i) {
    store.record_run(run_of("busy", "busy-" + std::to_string(i), t0 + std::chrono::seconds(i)));
  }
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs"), 6) << "5 latest + rare's latest";
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs WHERE pipeline = 'busy'"), 5);
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs WHERE run_id = 'busy-7'"), 1);
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs WHERE run_id = 'busy-6'"), 0);
  expect_same_run(store.last_run("rare"), rare);
  EXPECT_EQ(store.last_run("busy")->run_id, "busy-11");

  // A second run of the rare pipeline that is older than the kept five goes;
  // its latest stays.
  store.record_run(run_of("rare", "rare-0", t0 - 200h));
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs WHERE pipeline = 'rare'"), 1);
  expect_same_run(store.last_run("rare"), rare);
}

TEST(cache_store_records, the_default_bound_is_1000_runs) {
  scratch_directory dir;
  cache_store store(dir.path());
  EXPECT_EQ(cache_store_options{}.runs_kept, 1000u);
  // Seeded behind the store's back (one transaction), then one recorded run prunes.
  exec_sql(store.index_path(),
           "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1009) "
           "INSERT INTO runs(run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed) "
           "SELECT 'seed-' || i, 'p', i, 0, 0, 0, 0, 0, 0 FROM n");
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs"), 1010);
  store.record_run(run_of("p", "within", t0));
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs"), 1011)
      << "within the bound's slack (1000 / 64 = 15 rows): not pruned yet";
  for (int i = 0; i < 4; ++i)
    store.record_run(run_of("p", "within-" + std::to_string(i), t0 + std::chrono::seconds(i)));
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs"), 1015);
  store.record_run(run_of("p", "last", t0 + 1h));
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs"), 1000) << "pruned back to the bound";
  EXPECT_EQ(query_integer(store.index_path(), "SELECT min(started) FROM runs"), 16) << "the oldest went";
  EXPECT_EQ(store.last_run("p")->run_id, "last");
}

TEST(cache_store_records, unreadable_run_rows_are_skipped) {
  scratch_directory dir;
  cache_store store(dir.path());
  const run_record good = run_of("p", "good", t0);
  store.record_run(good);
  exec_sql(store.index_path(),
           "INSERT INTO runs(run_id, pipeline, started, wall, steps, hits, computed, reported_misses, failed) "
           "VALUES('text-start', 'p', 'tomorrow', 0, 0, 0, 0, 0, 0), "
           "('text-count', 'p', 9000000000000000000, 0, 'many', 0, 0, 0, 0)");
  expect_same_run(store.last_run("p"), good);
  expect_same_run(store.last_run(), good);
}

TEST(cache_store_records, step_records_round_trip_and_upsert_by_pipeline_and_step) {
  scratch_directory dir;
  cache_store store(dir.path());
  EXPECT_TRUE(store.last_steps("p").empty());
  const std::string json = R"({"name":"train","version":2,"inputs":["a\"b","é"],"code":"0123"})";
  const step_record first[] = {step_of("p", "train", "r1", t0, json), step_of("p", "load", "r1", t0),
                               step_of("q", "train", "r1", t0, "[]")};
  store.record_steps(first);
  auto got = store.last_steps("p");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].step, "load") << "ordered by step name";
  EXPECT_EQ(got[1].pipeline, "p");
  EXPECT_EQ(got[1].step, "train");
  EXPECT_EQ(got[1].key, first[0].key);
  EXPECT_EQ(got[1].components, json);
  EXPECT_EQ(got[1].run_id, "r1");
  EXPECT_EQ(got[1].when, t0);

  // A later run replaces p/train only.
  const step_record second[] = {step_of("p", "train", "r2", t0 + 1h, R"({"v":3})")};
  store.record_steps(second);
  got = store.last_steps("p");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].run_id, "r2");
  EXPECT_EQ(got[1].key, second[0].key);
  EXPECT_EQ(got[1].components, R"({"v":3})");
  EXPECT_EQ(got[0].run_id, "r1");
  ASSERT_EQ(store.last_steps("q").size(), 1u);
  EXPECT_EQ(store.last_steps("q")[0].run_id, "r1");
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM steps"), 3);

  // An older record (a run that finished late) does not replace a newer one;
  // in one batch, the latest of duplicates wins.
  const step_record late[] = {step_of("p", "train", "r0", t0 + 30min), step_of("p", "load", "r3", t0 + 2h),
                              step_of("p", "load", "r4", t0 + 3h), step_of("p", "load", "r5", t0 + 150min)};
  store.record_steps(late);
  got = store.last_steps("p");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].run_id, "r2");
  EXPECT_EQ(got[0].run_id, "r4");
  EXPECT_TRUE(store.last_steps("unknown").empty());
  store.record_steps({});  // nothing to do
}

TEST(cache_store_records, gc_leaves_run_and_step_records_alone) {
  scratch_directory dir;
  cache_store store(dir.path());
  store.put(key_of("gc records"), value_for(1), {bytes_type, "r1"});
  const run_record run = run_of("p", "r1", t0);
  store.record_run(run);
  const step_record steps[] = {step_of("p", "s", "r1", t0)};
  store.record_steps(steps);
  const auto gc = store.gc({.max_bytes = 0, .max_age = 0ns});
  EXPECT_EQ(gc.entries_removed, 1u);
  EXPECT_EQ(gc.bad_rows_removed, 0u);
  expect_same_run(store.last_run("p"), run);
  ASSERT_EQ(store.last_steps("p").size(), 1u);
  EXPECT_EQ(store.stats().entries, 0u);
}

TEST(cache_store_records, records_from_threads_with_their_own_stores) {
  scratch_directory dir;
  { cache_store create(dir.path()); }
  constexpr int threads = 4;
  constexpr int runs = 25;
  std::latch start(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      cache_store store(dir.path());
      start.arrive_and_wait();
      for (int i = 0; i < runs; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        store.record_run(run_of("p" + std::to_string(t), id, t0 + std::chrono::seconds(i)));
        const step_record steps[] = {step_of("shared", "s" + std::to_string(i % 3), id, t0 + std::chrono::seconds(i)),
                                     step_of("p" + std::to_string(t), "s", id, t0 + std::chrono::seconds(i))};
        store.record_steps(steps);
      }
    });
  }
  for (auto& w : workers) w.join();
  cache_store store(dir.path());
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM runs"), threads * runs);
  for (int t = 0; t < threads; ++t) {
    const auto last = store.last_run("p" + std::to_string(t));
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(last->run_id, "t" + std::to_string(t) + "-" + std::to_string(runs - 1));
  }
  EXPECT_EQ(store.last_steps("shared").size(), 3u);
}

// ---- schema versions ------------------------------------------------------------

TEST(cache_store_schema, an_index_of_schema_1_is_migrated_and_keeps_its_entries) {
  scratch_directory dir;
  const fs::path index = dir.path() / "index.sqlite";
  // What the first cache store (schema version 1) created, verbatim.
  const std::string schema_1 = R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS entries(
  key BLOB PRIMARY KEY,
  digest BLOB NOT NULL,
  size INTEGER NOT NULL,
  type BLOB NOT NULL,
  run_id TEXT NOT NULL,
  created INTEGER NOT NULL,
  last_used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_digest ON entries(digest);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries(last_used);
CREATE TABLE IF NOT EXISTS leases(
  key BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS in_use(
  digest BLOB NOT NULL,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL,
  PRIMARY KEY(digest, owner, id)
) WITHOUT ROWID;
PRAGMA user_version=1;
)sql";
  const digest key = key_of("from schema 1");
  const auto bytes = value_for(key);
  const digest content = digest_of(bytes);
  const fs::path blob = dir.path() / "blobs" / content.hex().substr(0, 2) / content.hex();
  fs::create_directories(blob.parent_path());
  std::ofstream(blob, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  exec_sql(index, schema_1 + "INSERT INTO entries VALUES(X'" + key.hex() + "', X'" + content.hex() + "', " +
                      std::to_string(bytes.size()) + ", X'" + bytes_type.hex() + "', 'old-run', 1, 2);");
  ASSERT_EQ(query_integer(index, "PRAGMA user_version"), 1);
  ASSERT_EQ(query_integer(index, "SELECT count(*) FROM sqlite_master WHERE name IN ('runs', 'steps')"), 0);

  {
    cache_store store(dir.path());
    EXPECT_EQ(query_integer(index, "PRAGMA user_version"), 5);
    std::vector<std::byte> out;
    const cache_result got = store.get(key, out);
    ASSERT_TRUE(got.hit()) << got.message;
    EXPECT_EQ(out, bytes);
    EXPECT_EQ(got.entry.run_id, "old-run");
    EXPECT_FALSE(store.last_run().has_value());
    store.record_run(run_of("p", "new-run", t0));
    const step_record steps[] = {step_of("p", "s", "new-run", t0)};
    store.record_steps(steps);
  }
  cache_store again(dir.path());  // a second open finds version 5 and changes nothing
  EXPECT_EQ(query_integer(index, "PRAGMA user_version"), 5);
  EXPECT_EQ(again.last_run("p")->run_id, "new-run");
  EXPECT_EQ(again.last_steps("p").size(), 1u);
  EXPECT_TRUE(again.lookup(key).hit());
}

TEST(cache_store_schema, an_index_of_a_newer_schema_is_refused_untouched) {
  scratch_directory dir;
  { cache_store create(dir.path()); }
  const fs::path index = dir.path() / "index.sqlite";
  exec_sql(index, "PRAGMA user_version=6");
  try {
    cache_store store(dir.path());
    ADD_FAILURE() << "expected cache_error";
  } catch (const cache_error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 6"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(index.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(query_integer(index, "PRAGMA user_version"), 6);
}

// ---- inline values ----------------------------------------------------------------

TEST(cache_store_inline, small_values_round_trip_in_the_index_row_without_a_file) {
  scratch_directory dir;
  cache_store store(dir.path());
  const std::vector<std::size_t> sizes = {0, 1, 100, 4096, 4097, 60'000, cache_inline_max};
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    SCOPED_TRACE(sizes[i]);
    std::vector<std::byte> bytes(sizes[i]);
    for (std::size_t b = 0; b < bytes.size(); ++b) bytes[b] = static_cast<std::byte>(b * 7 + i);
    const digest key = key_of("inline", i);
    const digest streamed_key = key_of("inline streamed", i);
    const auto put = store.put(key, bytes, {bytes_type, "r"});
    EXPECT_TRUE(put.inline_value);
    EXPECT_FALSE(put.wrote_blob);
    EXPECT_EQ(put.content, digest_of(bytes));
    EXPECT_EQ(put.size, bytes.size());
    // The streaming put, in small writes (the buffer grows) and one big one.
    const auto streamed = store.put(streamed_key,
                                    [&](std::ostream& o) {
                                      const auto half = bytes.size() / 2;
                                      for (std::size_t b = 0; b < half; ++b) o.put(static_cast<char>(bytes[b]));
                                      o.write(reinterpret_cast<const char*>(bytes.data()) + half,
                                              static_cast<std::streamsize>(bytes.size() - half));
                                      return digest_of(bytes);
                                    },
                                    {bytes_type, "r"});
    EXPECT_TRUE(streamed.inline_value);
    EXPECT_EQ(streamed.content, put.content);

    for (const digest& k : {key, streamed_key}) {
      const cache_result found = store.lookup(k);
      ASSERT_TRUE(found.hit());
      EXPECT_TRUE(found.entry.inline_value);
      EXPECT_EQ(found.entry.size, bytes.size());
      const cache_result got = store.get(k, out);
      ASSERT_TRUE(got.hit()) << got.message;
      EXPECT_TRUE(got.entry.inline_value);
      EXPECT_EQ(out, bytes);
      std::string loaded;
      ASSERT_TRUE(
          store.load(k, [&](std::istream& in) { loaded.assign(std::istreambuf_iterator<char>(in), {}); }).hit());
      EXPECT_EQ(loaded.size(), bytes.size());
    }
  }
  EXPECT_EQ(count_files(dir.path() / "blobs"), 0u) << "no blob file, no temporary file";

  // One byte more is a blob file, streamed or not.
  std::vector<std::byte> large(cache_inline_max + 1, std::byte{5});
  EXPECT_FALSE(store.put(key_of("large"), large, {bytes_type, "r"}).inline_value);
  const auto large_streamed = store.put(key_of("large streamed"),
                                        [&](std::ostream& o) {
                                          for (const auto b : large) o.put(static_cast<char>(b));
                                          return digest_of(large);
                                        },
                                        {bytes_type, "r"});
  EXPECT_FALSE(large_streamed.inline_value);
  EXPECT_EQ(count_files(dir.path() / "blobs"), 1u);
  ASSERT_TRUE(store.get(key_of("large streamed"), out).hit());
  EXPECT_EQ(out, large);
  EXPECT_FALSE(store.lookup(key_of("large")).entry.inline_value);

  std::uint64_t inline_bytes = 0;
  for (const auto size : sizes) inline_bytes += 2 * size;
  const auto stats = store.stats();
  EXPECT_EQ(stats.entries, 2 * sizes.size() + 2);
  EXPECT_EQ(stats.inline_values, 2 * sizes.size());
  EXPECT_EQ(stats.blobs, 1u);
  EXPECT_EQ(stats.bytes, inline_bytes + large.size());

  // A failing save leaves nothing; a wrong digest is an error.
  EXPECT_THROW(store.put(key_of("bad"),
                         [](std::ostream& o) {
                           o << "abc";
                           return digest{1, 2};
                         },
                         {bytes_type, "r"}),
               cache_error);
  EXPECT_EQ(store.lookup(key_of("bad")).status, cache_status::absent);

  const auto gc = store.gc({.max_bytes = 0});
  EXPECT_EQ(gc.entries_removed, 2 * sizes.size() + 2);
  EXPECT_EQ(gc.blobs_removed, 1u);
  EXPECT_EQ(gc.bytes_freed, inline_bytes + large.size());
  EXPECT_EQ(store.stats().entries, 0u);
}

TEST(cache_store_inline, damaged_inline_values_are_reported_misses_that_remove_the_row) {
  struct damage {
    const char* sql;
    cache_status expected;
  };
  for (const auto& [sql, expected] : {
           damage{"UPDATE entries SET inline_value = zeroblob(length(inline_value)) WHERE key = ?1",
                  cache_status::blob_corrupt},
           damage{"UPDATE entries SET inline_value = substr(inline_value, 1, 10) WHERE key = ?1",
                  cache_status::blob_truncated},
           damage{"UPDATE entries SET size = size + 1 WHERE key = ?1", cache_status::blob_truncated},
           damage{"UPDATE entries SET digest = randomblob(16) WHERE key = ?1", cache_status::blob_corrupt},
           damage{"UPDATE entries SET inline_value = 'text' WHERE key = ?1", cache_status::index_corrupt},
           damage{"UPDATE entries SET inline_value = 42 WHERE key = ?1", cache_status::index_corrupt},
       }) {
    SCOPED_TRACE(sql);
    scratch_directory dir;
    cache_store store(dir.path());
    const digest key = key_of("damaged inline");
    const auto bytes = inline_value_for(17);
    const auto put = store.put(key, bytes, {bytes_type, "r"});
    ASSERT_TRUE(put.inline_value);
    damage_index(store.index_path(), sql, key);

    std::vector<std::byte> out;
    const cache_result r = store.get(key, out);
    EXPECT_EQ(r.status, expected) << r.message;
    EXPECT_NE(r.message.find(key.hex()), std::string::npos) << r.message;
    EXPECT_NE(r.message.find(store.index_path().string()), std::string::npos) << r.message;
    EXPECT_EQ(store.lookup(key).status, cache_status::absent) << "the row was removed";
    EXPECT_EQ(store.get(key, out).status, cache_status::absent) << "a reported miss is reported once";

    store.put(key, bytes, {bytes_type, "again"});  // the recompute
    const cache_result again = store.get(key, out);
    ASSERT_TRUE(again.hit()) << again.message;
    EXPECT_EQ(out, bytes);
  }
  // gc removes rows whose inline value is neither null nor a blob.
  scratch_directory dir;
  cache_store store(dir.path());
  store.put(key_of("gc inline"), inline_value_for(1), {bytes_type, "r"});
  damage_index(store.index_path(), "UPDATE entries SET inline_value = 'text' WHERE key = ?1", key_of("gc inline"));
  EXPECT_EQ(store.gc({}).bad_rows_removed, 1u);
}

TEST(cache_store_inline, an_inline_value_and_a_blob_with_the_same_digest_are_independent) {
  // An index migrated from schema 2 may name a small blob file; a new put of
  // the same bytes under another key is inline. Damage to one is not the other's.
  scratch_directory dir;
  cache_store store(dir.path());
  const auto bytes = inline_value_for(4);
  const digest content = digest_of(bytes);
  const fs::path blob = store.blob_path(content);
  fs::create_directories(blob.parent_path());
  std::ofstream(blob, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), 10);  // a truncated blob
  exec_sql(store.index_path(), "INSERT INTO entries VALUES(X'" + key_of("file").hex() + "', X'" + content.hex() +
                                   "', " + std::to_string(bytes.size()) + ", X'" + bytes_type.hex() +
                                   "', 'old', 1, 2, NULL)");
  store.put(key_of("inline"), bytes, {bytes_type, "r"});
  std::vector<std::byte> out;
  EXPECT_EQ(store.get(key_of("file"), out).status, cache_status::blob_truncated);
  EXPECT_FALSE(fs::exists(blob));
  const cache_result r = store.get(key_of("inline"), out);
  ASSERT_TRUE(r.hit()) << "the inline row has its own copy: " << r.message;
  EXPECT_EQ(out, bytes);
}

TEST(cache_store_schema, an_index_of_schema_2_is_migrated_and_keeps_its_entries) {
  scratch_directory dir;
  const fs::path index = dir.path() / "index.sqlite";
  // What the schema 2 cache store created, verbatim (entries without inline_value).
  const std::string schema_2 = R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS entries(
  key BLOB PRIMARY KEY,
  digest BLOB NOT NULL,
  size INTEGER NOT NULL,
  type BLOB NOT NULL,
  run_id TEXT NOT NULL,
  created INTEGER NOT NULL,
  last_used INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_digest ON entries(digest);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries(last_used);
CREATE TABLE IF NOT EXISTS leases(
  key BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS in_use(
  digest BLOB NOT NULL,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL,
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
PRAGMA user_version=2;
)sql";
  // Two entries of schema 2, both with blob files: one small, one large.
  std::string rows;
  const std::vector<std::vector<std::byte>> values = {inline_value_for(1), blob_value_for(2)};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const digest content = digest_of(values[i]);
    const fs::path blob = dir.path() / "blobs" / content.hex().substr(0, 2) / content.hex();
    fs::create_directories(blob.parent_path());
    std::ofstream(blob, std::ios::binary)
        .write(reinterpret_cast<const char*>(values[i].data()), static_cast<std::streamsize>(values[i].size()));
    rows += "INSERT INTO entries VALUES(X'" + key_of("from schema 2", i).hex() + "', X'" + content.hex() + "', " +
            std::to_string(values[i].size()) + ", X'" + bytes_type.hex() + "', 'old-run', 1, 2);";
  }
  exec_sql(index, schema_2 + rows +
                      "INSERT INTO runs(run_id, pipeline, started, wall, steps, hits, computed, "
                      "reported_misses, failed) VALUES('old-run', 'p', 5, 0, 0, 0, 0, 0, 0);");
  ASSERT_EQ(query_integer(index, "PRAGMA user_version"), 2);

  {
    cache_store store(dir.path());
    EXPECT_EQ(query_integer(index, "PRAGMA user_version"), 5);
    EXPECT_EQ(query_integer(index, "SELECT count(*) FROM pragma_table_info('entries') WHERE name = 'inline_value'"), 1);
    EXPECT_EQ(query_integer(index, "SELECT count(*) FROM pragma_table_info('leases') WHERE name = 'started'"), 1);
    EXPECT_EQ(query_integer(index, "SELECT count(*) FROM pragma_table_info('in_use') WHERE name = 'started'"), 1);
    std::vector<std::byte> out;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const cache_result got = store.get(key_of("from schema 2", i), out);
      ASSERT_TRUE(got.hit()) << got.message;
      EXPECT_FALSE(got.entry.inline_value) << "old rows keep their blob files";
      EXPECT_EQ(got.entry.run_id, "old-run");
      EXPECT_EQ(out, values[i]);
    }
    EXPECT_EQ(store.last_run("p")->run_id, "old-run");
    const auto put = store.put(key_of("new"), values[0], {bytes_type, "new-run"});
    EXPECT_TRUE(put.inline_value) << "new small values are inline";
    ASSERT_TRUE(store.get(key_of("new"), out).hit());
    EXPECT_EQ(out, values[0]);
    const auto stats = store.stats();
    EXPECT_EQ(stats.entries, 3u);
    EXPECT_EQ(stats.blobs, 2u);
    EXPECT_EQ(stats.inline_values, 1u);
    EXPECT_EQ(store.gc({}).orphans_removed, 0u) << "the small blob file is still named by its old row";
  }
  cache_store again(dir.path());  // a second open finds version 5 and changes nothing
  EXPECT_EQ(query_integer(index, "PRAGMA user_version"), 5);
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_TRUE(again.get(key_of("from schema 2", i), out).hit());
  EXPECT_TRUE(again.get(key_of("new"), out).hit());
}

// When a process started (field 22 of /proc/<pid>/stat), for the tests below.
std::int64_t start_time_of(pid_t pid) {
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat_file, text);
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) fields >> field;
  return std::stoll(field);
}

std::string this_host() {
  std::array<char, 256> name{};
  ::gethostname(name.data(), name.size() - 1);
  return name.data();
}

// A lease row on `key` owned by `pid` on this host, expiring in an hour,
// with the owner start time `started` ("NULL" for a row of schema 3).
void plant_lease(const fs::path& index, const digest& key, pid_t pid, const std::string& started) {
  const auto expires =
      std::chrono::duration_cast<std::chrono::nanoseconds>((std::chrono::system_clock::now() + 1h).time_since_epoch())
          .count();
  exec_sql(index, "INSERT INTO leases(key, owner, id, pid, host, expires, started) VALUES(X'" + key.hex() +
                      "', X'0123456789abcdef0123456789abcdef', 1, " + std::to_string(pid) + ", '" + this_host() +
                      "', " + std::to_string(expires) + ", " + started + ")");
}

// A pid is reused: a container's pipeline is pid 1 in every run, and a busy
// host hands a dead owner's pid to a new process. A row whose pid is alive
// but whose owner started at another time was left by a dead process.
TEST(cache_store_leases, a_lease_whose_pid_now_names_another_process_is_taken_over) {
  scratch_directory dir;
  cache_store store(dir.path());
  const fs::path index = store.index_path();
  const pid_t parent = ::getppid();

  plant_lease(index, key_of("reused pid", 1), parent, "-1");
  const auto other = store.try_acquire(key_of("reused pid", 1), 60s);
  EXPECT_EQ(other.status, lease_status::acquired) << other.holder;
  EXPECT_NE(other.holder.find("process gone"), std::string::npos) << other.holder;

  plant_lease(index, key_of("reused pid", 2), ::getpid(), "-1");
  const auto mine = store.try_acquire(key_of("reused pid", 2), 60s);
  EXPECT_EQ(mine.status, lease_status::acquired) << "this process's pid, another start time: " << mine.holder;
  EXPECT_NE(mine.holder.find("process gone"), std::string::npos) << mine.holder;

  // The owner itself, still running: held.
  plant_lease(index, key_of("reused pid", 3), parent, std::to_string(start_time_of(parent)));
  const auto live = store.try_acquire(key_of("reused pid", 3), 60s);
  EXPECT_EQ(live.status, lease_status::held) << live.holder;
  // A row without a start time (written before schema 4): the pid alone decides, as it did.
  plant_lease(index, key_of("reused pid", 4), parent, "NULL");
  EXPECT_EQ(store.try_acquire(key_of("reused pid", 4), 60s).status, lease_status::held);

  // gc drops the in-use marks of a reused pid too, and keeps the live ones.
  const auto expires =
      std::chrono::duration_cast<std::chrono::nanoseconds>((std::chrono::system_clock::now() + 1h).time_since_epoch())
          .count();
  for (const auto& [id, started] : {std::pair{1, std::string("-1")}, {2, std::to_string(start_time_of(parent))}}) {
    exec_sql(index, "INSERT INTO in_use(digest, owner, id, pid, host, expires, started) VALUES(X'" +
                        key_of("marked").hex() + "', X'0123456789abcdef0123456789abcdef', " + std::to_string(id) +
                        ", " + std::to_string(parent) + ", '" + this_host() + "', " + std::to_string(expires) + ", " +
                        started + ")");
  }
  EXPECT_EQ(store.gc({}).stale_marks_removed, 1u) << "the mark with the wrong start time";
  EXPECT_EQ(query_integer(index, "SELECT count(*) FROM in_use"), 1);
}

TEST(cache_store_leases, put_with_the_lease_releases_it_with_the_row) {
  scratch_directory dir;
  cache_store mine(dir.path());
  cache_store theirs(dir.path());
  int n = 0;
  for (const auto& bytes : {inline_value_for(1), blob_value_for(2)}) {
    for (const bool streamed : {false, true}) {
      SCOPED_TRACE(n);
      const digest key = key_of("leased put", static_cast<std::uint64_t>(n++));
      auto attempt = mine.try_acquire(key, 60s);
      ASSERT_EQ(attempt.status, lease_status::acquired);
      EXPECT_EQ(theirs.try_acquire(key, 60s).status, lease_status::held);
      const auto put = streamed ? mine.put(
                                      key,
                                      [&](std::ostream& o) {
                                        o.write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
                                        return digest_of(bytes);
                                      },
                                      {bytes_type, "r"}, &attempt.lease)
                                : mine.put(key, bytes, {bytes_type, "r"}, &attempt.lease);
      EXPECT_EQ(put.inline_value, bytes.size() <= cache_inline_max);
      EXPECT_FALSE(attempt.lease.held()) << "released by the put";
      EXPECT_FALSE(attempt.lease.release()) << "and so already given back";
      EXPECT_EQ(mine.stats().leases, 0u);
      EXPECT_EQ(theirs.try_acquire(key, 60s).status, lease_status::cached);
      ASSERT_TRUE(theirs.erase(key));
      auto next = theirs.try_acquire(key, 60s);
      EXPECT_EQ(next.status, lease_status::acquired) << "another store can take the key";
      EXPECT_TRUE(next.holder.empty()) << "the lease was released, not taken over: " << next.holder;
    }
  }

  // A lease of another store or key is refused, and stays held.
  const digest key = key_of("leased put", 99);
  auto theirs_lease = theirs.try_acquire(key, 60s);
  ASSERT_EQ(theirs_lease.status, lease_status::acquired);
  EXPECT_THROW(mine.put(key, inline_value_for(3), {bytes_type, "r"}, &theirs_lease.lease), std::invalid_argument);
  EXPECT_THROW(theirs.put(key_of("other key"), inline_value_for(3), {bytes_type, "r"}, &theirs_lease.lease),
               std::invalid_argument);
  EXPECT_TRUE(theirs_lease.lease.held());
  EXPECT_EQ(mine.lookup(key).status, cache_status::absent);
  EXPECT_EQ(mine.try_acquire(key, 60s).status, lease_status::held);
  // A failing save leaves the lease held too.
  EXPECT_THROW(theirs.put(
                   key, [](std::ostream&) -> digest { throw std::runtime_error("save failed"); }, {bytes_type, "r"},
                   &theirs_lease.lease),
               std::runtime_error);
  EXPECT_TRUE(theirs_lease.lease.held());
  EXPECT_TRUE(theirs_lease.lease.release());
}

// ---- temporaries of dead writers ------------------------------------------------

namespace {

// The host part of a temporary's name: 8 hex digits of the host name's digest.
std::string host_tag() { return hasher().update(this_host()).finish().hex().substr(0, 8); }

fs::path plant_temporary(const fs::path& dir, const std::string& name) {
  const fs::path file = dir / "blobs" / name;
  std::ofstream(file) << "half a blob";
  return file;
}

// A pid that no process has (a child that has exited and been reaped).
pid_t dead_pid() {
  const pid_t child = spawn([] { return 0; });
  wait_for(child);
  return child;
}

}  // namespace

TEST(cache_store, opening_for_writing_removes_the_temporaries_of_dead_writers) {
  scratch_directory dir;
  { cache_store create(dir.path()); }
  const std::string tag = host_tag();
  const std::string me = std::to_string(::getpid());
  const std::string my_start = std::to_string(start_time_of(::getpid()));
  const pid_t parent = ::getppid();
  const std::string dead = std::to_string(dead_pid());
  const fs::path dead_writer = plant_temporary(dir.path(), ".tmp-" + tag + "-" + dead + "-12345-00112233aabbccdd");
  // This process's pid, another start time: an earlier process that had the same pid.
  const fs::path reused_pid =
      plant_temporary(dir.path(), ".tmp-" + tag + "-" + me + "-" + my_start + "1-00112233aabbccdd");
  const fs::path mine = plant_temporary(dir.path(), ".tmp-" + tag + "-" + me + "-" + my_start + "-00112233aabbccdd");
  const fs::path live_writer = plant_temporary(dir.path(), ".tmp-" + tag + "-" + std::to_string(parent) + "-" +
                                                               std::to_string(start_time_of(parent)) + "-0011223344");
  const fs::path other_host = plant_temporary(dir.path(), ".tmp-0badf00d-" + dead + "-12345-00112233aabbccdd");
  // An old-format name (no start time): left to gc, as before.
  const fs::path old_format = plant_temporary(dir.path(), ".tmp-" + tag + "-" + dead + "-00112233aabbccdd");

  cache_store store(dir.path());
  EXPECT_FALSE(fs::exists(dead_writer)) << "its writer is dead";
  EXPECT_FALSE(fs::exists(reused_pid)) << "its pid now names another process";
  EXPECT_TRUE(fs::exists(mine)) << "this process is its writer";
  EXPECT_TRUE(fs::exists(live_writer)) << "its writer is alive";
  EXPECT_TRUE(fs::exists(other_host)) << "another host's writer: only the 24-hour rule tells";
  EXPECT_TRUE(fs::exists(old_format));

  const auto gc = store.gc({});
  EXPECT_EQ(gc.temporaries_removed, 1u);
  EXPECT_FALSE(fs::exists(old_format)) << "gc removes an old-format temporary of a dead pid";
  EXPECT_TRUE(fs::exists(mine));
  EXPECT_TRUE(fs::exists(live_writer));
  EXPECT_TRUE(fs::exists(other_host));
}

// A writer killed while its value spills to a temporary file: the next store
// opened on the directory removes the file (before, only gc did).
TEST(cache_store, a_killed_writers_temporary_is_removed_when_the_store_is_next_opened) {
  scratch_directory dir;
  const auto bytes = blob_value_for(7);
  channel progress;
  channel never;  // the parent writes nothing: the child waits on it until it is killed
  const pid_t child = spawn([&] {
    progress.close_read();
    never.close_write();
    cache_store store(dir.path());
    store.put(key_of("killed"),
              [&](std::ostream& out) {
                out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
                out.flush();
                progress.send();        // the value is in the temporary file
                (void)never.receive();  // killed here
                return digest_of(bytes);
              },
              {bytes_type, "r"});
    return 0;
  });
  progress.close_write();
  never.close_read();
  ASSERT_EQ(progress.receive(), 'x');
  ASSERT_EQ(count_temporaries(dir.path()), 1u);
  ::kill(child, SIGKILL);
  ASSERT_EQ(wait_for(child), 128 + SIGKILL);
  cache_store store(dir.path());
  EXPECT_EQ(count_temporaries(dir.path()), 0u);
}

// ---- read-only cache directories ------------------------------------------------

namespace {

// A cache with a blob value, an inline value and a run record; returns their keys.
struct filled_cache {
  digest blob_key = key_of("read-only", 1);
  digest inline_key = key_of("read-only", 2);
  std::vector<std::byte> blob_bytes = blob_value_for(blob_key);
  std::vector<std::byte> inline_bytes = inline_value_for(3);
  explicit filled_cache(const fs::path& dir) {
    cache_store store(dir);
    store.put(blob_key, blob_bytes, {bytes_type, "r"});
    store.put(inline_key, inline_bytes, {bytes_type, "r"});
    store.record_run(run_of("p", "r", t0));
  }
};

// Why a read-only store is not what it should be; empty if it is.
std::string read_only_store_problems(cache_store& store, const filled_cache& cache) {
  std::string problems;
  const auto problem = [&](const std::string& what) { problems += what + "; "; };
  if (!store.read_only()) problem("read_only() is false");
  std::vector<std::byte> out;
  if (const auto got = store.get(cache.blob_key, out); !got.hit() || out != cache.blob_bytes) {
    problem("the blob value is not a hit: " + got.message);
  }
  if (const auto got = store.get(cache.inline_key, out); !got.hit() || out != cache.inline_bytes) {
    problem("the inline value is not a hit: " + got.message);
  }
  const digest keys[] = {cache.blob_key, cache.inline_key, key_of("absent")};
  const auto found = store.lookup(keys);
  if (!found[0].hit() || !found[1].hit() || found[2].status != cache_status::absent) problem("lookup of a batch");
  if (store.stats().entries != 2) problem("stats");
  if (!store.last_run("p")) problem("last_run");
  store.touch(keys);  // nothing, and no error
  const auto refused = [&](const char* what, auto&& write) {
    try {
      write();
      problem(std::string(what) + " did not throw");
    } catch (const cache_error& e) {
      if (std::string(e.what()).find(store.directory().string()) == std::string::npos) {
        problem(std::string(what) + ": the message does not name the directory: " + e.what());
      }
    }
  };
  refused("put", [&] { (void)store.put(key_of("new"), cache.inline_bytes, {bytes_type, "r"}); });
  refused("streamed put", [&] {
    (void)store.put(key_of("new"), [](std::ostream&) -> digest { throw std::logic_error("must not be called"); },
                    {bytes_type, "r"});
  });
  refused("try_acquire", [&] { (void)store.try_acquire(key_of("new"), 60s); });
  refused("erase", [&] { (void)store.erase(cache.blob_key); });
  refused("gc", [&] { (void)store.gc({.max_bytes = 0}); });
  refused("record_run", [&] { store.record_run(run_of("p", "r2", t0)); });
  const step_record steps[] = {step_of("p", "s", "r2", t0)};
  refused("record_steps", [&] { store.record_steps(steps); });
  return problems;
}

}  // namespace

TEST(cache_store_read_only, a_store_opened_read_only_serves_hits_and_refuses_writes) {
  scratch_directory dir;
  const filled_cache cache(dir.path());
  const fs::path index = dir.path() / "index.sqlite";
  const auto used_before = query_integer(index, "SELECT sum(last_used) FROM entries");
  {
    cache_store_options options;
    options.touch_interval = 0s;  // a writable store would rewrite last_used on every get
    options.read_only = true;
    cache_store store(dir.path(), options);
    EXPECT_EQ(read_only_store_problems(store, cache), "");
    // A damaged blob is a reported miss that removes nothing.
    const fs::path blob = store.blob_path(digest_of(cache.blob_bytes));
    make_writable(blob);
    std::fstream(blob, std::ios::in | std::ios::out | std::ios::binary).seekp(10).put('!');
    std::vector<std::byte> out;
    const auto got = store.get(cache.blob_key, out);
    EXPECT_EQ(got.status, cache_status::blob_corrupt);
    EXPECT_NE(got.message.find("read-only"), std::string::npos) << got.message;
    EXPECT_TRUE(fs::exists(blob));
    EXPECT_TRUE(store.lookup(cache.blob_key).hit()) << "the row stays";
  }
  EXPECT_EQ(query_integer(index, "SELECT count(*) FROM in_use"), 0) << "no in-use marks";
  EXPECT_EQ(query_integer(index, "SELECT sum(last_used) FROM entries"), used_before) << "no touch";
  // A read-only store of a directory that has no index: empty, not an error.
  scratch_directory empty;
  cache_store_options read_only;
  read_only.read_only = true;
  cache_store nothing(empty.path() / "none", read_only);
  EXPECT_TRUE(nothing.read_only());
  EXPECT_EQ(nothing.lookup(cache.blob_key).status, cache_status::absent);
  EXPECT_FALSE(fs::exists(empty.path() / "none")) << "a read-only store creates nothing";
}

// The real thing: a cache directory (and its files) that the process cannot
// write, opened by a user who is not its owner (tests run as root, which
// ignores permission bits: the child becomes nobody). Twice: with the WAL
// and its -shm file left by the last writer, and with the WAL checkpointed
// and both deleted (SQLite then cannot read the index normally).
TEST(cache_store_read_only, a_directory_that_cannot_be_written_is_opened_read_only) {
  for (const bool checkpointed : {false, true}) {
    SCOPED_TRACE(checkpointed ? "WAL checkpointed and deleted" : "WAL and -shm in place");
    scratch_directory dir;
    const filled_cache cache(dir.path() / "cache");
    const fs::path index = dir.path() / "cache" / "index.sqlite";
    if (checkpointed) {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(index.c_str(), &db), SQLITE_OK);
      ASSERT_EQ(sqlite3_exec(db, "SELECT count(*) FROM entries", nullptr, nullptr, nullptr), SQLITE_OK);
      sqlite3_close(db);  // the last connection checkpoints the WAL and deletes -wal and -shm
      ASSERT_FALSE(fs::exists(index.string() + "-shm"));
    } else {
      ASSERT_TRUE(fs::exists(index.string() + "-shm"));
    }
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                    fs::perms::others_read | fs::perms::others_exec);
    for (const auto& e : fs::recursive_directory_iterator(dir.path() / "cache")) {
      fs::permissions(e.path(), fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                      fs::perm_options::remove);
      fs::permissions(e.path(), fs::perms::others_read | (e.is_directory() ? fs::perms::others_exec : fs::perms::none),
                      fs::perm_options::add);
    }
    fs::permissions(dir.path() / "cache", fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                    fs::perm_options::remove);
    const pid_t child = spawn([&] {
      if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 77;
      cache_store store(dir.path() / "cache");
      const std::string problems = read_only_store_problems(store, cache);
      if (problems.empty()) return 0;
      std::fprintf(stderr, "%s\n", problems.c_str());
      return 1;
    });
    const int code = wait_for(child);
    for (const auto& e : fs::recursive_directory_iterator(dir.path() / "cache")) make_writable(e.path());
    make_writable(dir.path() / "cache");
    if (code == 77) GTEST_SKIP() << "cannot become user nobody to lose write access";
    EXPECT_EQ(code, 0);
  }
}

// ---- known file digests -----------------------------------------------------------

namespace {

using penstock::detail::r1::file_stat_row;
using penstock::detail::r1::known_file_digest;

file_stat_row stat_row(std::string path, std::uint64_t seed = 0) {
  return file_stat_row{.path = std::move(path),
                       .device = 0xfd00 + seed,
                       .inode = (std::uint64_t{1} << 63) + seed,  // above INT64_MAX: stored bit for bit
                       .size = 4096 + seed,
                       .mtime_ns = 1'790'000'000'123'456'789 + static_cast<std::int64_t>(seed),
                       .ctime_ns = 1'790'000'000'987'654'321 + static_cast<std::int64_t>(seed)};
}

}  // namespace

TEST(cache_store_known_files, a_digest_is_known_while_every_stat_field_is_unchanged) {
  scratch_directory dir;
  cache_store store(dir.path());
  // A path that is not UTF-8 (0xff, 0xfe), with a quote in it too.
  const std::string odd = std::string("/data/caf\xff\xfe'") + "s.csv";
  const std::pair<file_stat_row, known_file_digest> rows[] = {
      {stat_row("/data/a.csv", 1), {key_of("content a"), 111}},
      {stat_row(odd, 2), {key_of("content odd"), 222}},
  };
  EXPECT_FALSE(store.known_file(rows[0].first)) << "nothing remembered yet";
  store.remember_files(rows);
  for (const auto& [row, known] : rows) {
    const auto got = store.known_file(row);
    ASSERT_TRUE(got) << row.path;
    EXPECT_EQ(got->content, known.content);
    EXPECT_EQ(got->hashed_at_ns, known.hashed_at_ns);
  }
  // Any field changed: unknown.
  for (int field = 0; field < 5; ++field) {
    SCOPED_TRACE(field);
    file_stat_row changed = rows[0].first;
    switch (field) {
      case 0: ++changed.device; break;
      case 1: ++changed.inode; break;
      case 2: ++changed.size; break;
      case 3: ++changed.mtime_ns; break;
      default: ++changed.ctime_ns; break;
    }
    EXPECT_FALSE(store.known_file(changed));
  }
  // The exact bytes of the path: a prefix or the UTF-8 replacement is another path.
  EXPECT_FALSE(store.known_file(stat_row(odd.substr(0, odd.size() - 1), 2)));
  EXPECT_FALSE(store.known_file(stat_row("/data/caf\xef\xbf\xbd\xef\xbf\xbd's.csv", 2)));
  // A batch, in order, with an unknown path among them.
  const file_stat_row batch[] = {rows[1].first, stat_row("/data/unknown"), rows[0].first};
  const auto known = store.known_files(batch);
  ASSERT_EQ(known.size(), 3u);
  EXPECT_EQ(known[0]->content, key_of("content odd"));
  EXPECT_FALSE(known[1]);
  EXPECT_EQ(known[2]->content, key_of("content a"));
  // Remembering again replaces the row.
  const std::pair<file_stat_row, known_file_digest> newer[] = {{stat_row("/data/a.csv", 7), {key_of("new a"), 333}}};
  store.remember_files(newer);
  EXPECT_FALSE(store.known_file(rows[0].first));
  EXPECT_EQ(store.known_file(newer[0].first)->content, key_of("new a"));
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM file_stats"), 2);
  // A relative path is a caller's mistake.
  EXPECT_THROW((void)store.known_file(stat_row("data/a.csv")), std::invalid_argument);
}

// stored_files: what is stored for each path, asked before the files are
// stat'ed (hash_trees overlaps it with the stats); the caller compares.
TEST(cache_store_known_files, stored_rows_come_back_whole_by_path_and_unreadable_ones_as_none) {
  scratch_directory dir;
  cache_store store(dir.path());
  const std::string odd = std::string("/data/caf\xff\xfe'") + "s.csv";
  const std::pair<file_stat_row, known_file_digest> rows[] = {
      {stat_row("/data/a.csv", 1), {key_of("content a"), 111}},
      {stat_row(odd, 2), {key_of("content odd"), 222}},
      {stat_row("/data/bad.csv", 3), {key_of("content bad"), 333}},
  };
  store.remember_files(rows);
  exec_sql(store.index_path(),
           "UPDATE file_stats SET mtime_ns = 'yesterday' WHERE path = CAST('/data/bad.csv' AS BLOB)");
  const std::string unknown = "/data/unknown";
  const std::string* asked[] = {&rows[1].first.path, &unknown, &rows[2].first.path, &rows[0].first.path, &unknown};
  const auto got = store.stored_files(asked);
  ASSERT_EQ(got.size(), 5u);
  ASSERT_TRUE(got[0]);
  EXPECT_TRUE(same_stat_fields(got[0]->row, rows[1].first));
  EXPECT_TRUE(got[0]->row.path.empty()) << "the caller has the path";
  EXPECT_EQ(got[0]->known.content, key_of("content odd"));
  EXPECT_EQ(got[0]->known.hashed_at_ns, 222);
  EXPECT_FALSE(got[1]) << "nothing stored";
  EXPECT_FALSE(got[2]) << "an unreadable row is as if there were none";
  ASSERT_TRUE(got[3]);
  EXPECT_TRUE(same_stat_fields(got[3]->row, rows[0].first));
  EXPECT_EQ(got[3]->known.content, key_of("content a"));
  EXPECT_FALSE(got[4]) << "asked twice, absent twice";
  // known_files compares what stored_files reads.
  file_stat_row changed = rows[0].first;
  ++changed.ctime_ns;
  const file_stat_row batch[] = {rows[0].first, changed, rows[2].first};
  const auto known = store.known_files(batch);
  EXPECT_TRUE(known[0]);
  EXPECT_FALSE(known[1]);
  EXPECT_FALSE(known[2]);
  const std::string relative = "data/a.csv";
  const std::string* bad[] = {&relative};
  EXPECT_THROW((void)store.stored_files(bad), std::invalid_argument);
}

// known_files reads a batch in the index's order (database::seek_each):
// wanted paths that are neighbours in the index, far apart, absent, asked
// twice, prefixes of one another and not UTF-8 must come back as
// known_file finds them one at a time, in the batch's order.
TEST(cache_store_known_files, a_batch_agrees_with_one_at_a_time_lookups) {
  scratch_directory dir;
  cache_store store(dir.path());
  std::vector<std::pair<file_stat_row, known_file_digest>> stored;
  for (int i = 0; i < 300; ++i) {
    const std::string path = "/data/f" + std::to_string(1000 + i).substr(1);
    stored.push_back({stat_row(path, static_cast<std::uint64_t>(i)), {key_of(path), 1000 + i}});
  }
  for (const std::string& path : {std::string("/data/a"), std::string("/data/a/"), std::string("/data/ab"),
                                  std::string("/data/\xff\xfe"), std::string("/data/\x7f")})
    stored.push_back({stat_row(path, 7), {key_of(path), 5}});
  store.remember_files(stored);
  std::mt19937 random(13);
  std::vector<std::vector<file_stat_row>> batches;
  std::vector<file_stat_row> all, every_tenth, shuffled, mixed;
  for (std::size_t i = 0; i < stored.size(); ++i) {
    all.push_back(stored[i].first);
    if (i % 10 == 3) every_tenth.push_back(stored[i].first);
  }
  shuffled = all;
  std::shuffle(shuffled.begin(), shuffled.end(), random);
  for (int i = 0; i < 200; ++i) {
    const auto pick = random() % 4;
    if (pick == 0)
      mixed.push_back(
          stat_row("/data/f" + std::to_string(1000 + random() % 300).substr(1) + "x"));  // absent, between rows
    if (pick == 1) mixed.push_back(stored[random() % stored.size()].first);              // present (twice, some)
    if (pick == 2) mixed.push_back(stat_row("/data/a", 8));                              // present, other stat
    if (pick == 3) mixed.push_back(stat_row("/zzz/" + std::to_string(i)));               // beyond every row
  }
  mixed.push_back(stat_row("/"));  // before every row
  batches = {all, every_tenth, shuffled, mixed, {stat_row("/data/a", 7)}, {}};
  for (std::size_t b = 0; b < batches.size(); ++b) {
    SCOPED_TRACE(b);
    const auto batch = store.known_files(batches[b]);
    ASSERT_EQ(batch.size(), batches[b].size());
    std::size_t found = 0;
    for (std::size_t k = 0; k < batch.size(); ++k) {
      const auto one = store.known_file(batches[b][k]);
      ASSERT_EQ(batch[k].has_value(), one.has_value()) << batches[b][k].path;
      if (!one) continue;
      ++found;
      EXPECT_EQ(batch[k]->content, one->content) << batches[b][k].path;
      EXPECT_EQ(batch[k]->hashed_at_ns, one->hashed_at_ns) << batches[b][k].path;
    }
    if (b == 0) {
      EXPECT_EQ(found, stored.size());
    } else if (b == 1) {
      EXPECT_EQ(found, 31u);
    }
  }
}

// lookup of a batch reads it in the index's order too: the same answers as
// one lookup per key, in the batch's order, whatever the order and density.
TEST(cache_store_lookup, a_batch_agrees_with_one_at_a_time_lookups) {
  scratch_directory dir;
  cache_store store(dir.path());
  const std::vector<std::byte> value = inline_value_for(1);
  std::vector<digest> present;
  for (std::uint64_t i = 0; i < 200; ++i) {
    present.push_back(key_of("present", i));
    store.put(present.back(), value, {bytes_type, "r"});
  }
  std::mt19937 random(17);
  std::vector<digest> all = present, every_ninth, mixed;
  std::shuffle(all.begin(), all.end(), random);
  for (std::size_t i = 0; i < present.size(); i += 9) every_ninth.push_back(present[i]);
  for (std::uint64_t i = 0; i < 300; ++i)
    mixed.push_back(random() % 2 == 0 ? present[random() % present.size()] : key_of("absent", i));
  const std::vector<std::vector<digest>> batches = {all, every_ninth, mixed, {}};
  for (std::size_t b = 0; b < batches.size(); ++b) {
    SCOPED_TRACE(b);
    const auto& batch = batches[b];
    const auto found = store.lookup(batch);
    ASSERT_EQ(found.size(), batch.size());
    std::size_t hits = 0;
    for (std::size_t k = 0; k < batch.size(); ++k) {
      const auto one = store.lookup(batch[k]);
      ASSERT_EQ(found[k].status, one.status) << batch[k].hex();
      if (!one.hit()) continue;
      ++hits;
      EXPECT_EQ(found[k].entry.key, batch[k]);
      EXPECT_EQ(found[k].entry.content, one.entry.content);
      EXPECT_EQ(found[k].entry.size, one.entry.size);
    }
    if (b == 0) {
      EXPECT_EQ(hits, present.size());
    }
  }
}

TEST(cache_store_known_files, gc_removes_only_the_rows_whose_file_is_gone) {
  scratch_directory dir;
  cache_store store(dir.path());
  const fs::path kept = dir.path() / "kept.csv";
  const fs::path removed = dir.path() / "removed.csv";
  std::ofstream(kept) << "a,b\n";
  std::ofstream(removed) << "c,d\n";
  const std::pair<file_stat_row, known_file_digest> rows[] = {
      {stat_row(kept.string()), {key_of("kept"), 1}},
      {stat_row(removed.string()), {key_of("removed"), 2}},
      {stat_row((kept / "not-a-directory").string()), {key_of("under a file"), 3}},
  };
  store.remember_files(rows);
  fs::remove(removed);
  const auto gc = store.gc({.max_bytes = 0});
  EXPECT_EQ(gc.file_stats_removed, 2u);
  EXPECT_TRUE(store.known_file(rows[0].first)) << "its file is still there (stale or not: the stat fields decide)";
  EXPECT_FALSE(store.known_file(rows[1].first));
  EXPECT_EQ(query_integer(store.index_path(), "SELECT count(*) FROM file_stats"), 1);
}

TEST(cache_store_known_files, a_read_only_store_reads_them_and_remembers_nothing) {
  scratch_directory dir;
  const std::pair<file_stat_row, known_file_digest> rows[] = {{stat_row("/data/a.csv"), {key_of("a"), 1}}};
  { cache_store(dir.path()).remember_files(rows); }
  cache_store_options options;
  options.read_only = true;
  cache_store store(dir.path(), options);
  EXPECT_EQ(store.known_file(rows[0].first)->content, key_of("a"));
  const std::pair<file_stat_row, known_file_digest> more[] = {{stat_row("/data/b.csv"), {key_of("b"), 2}}};
  store.remember_files(more);  // nothing, and no error
  EXPECT_FALSE(store.known_file(more[0].first));
}

TEST(cache_store_schema, an_index_of_schema_4_gets_the_file_stats_table) {
  scratch_directory dir;
  const fs::path index = dir.path() / "index.sqlite";
  // What the schema 4 cache store created, verbatim.
  const std::string schema_4 = R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE entries(
  key BLOB PRIMARY KEY,
  digest BLOB NOT NULL,
  size INTEGER NOT NULL,
  type BLOB NOT NULL,
  run_id TEXT NOT NULL,
  created INTEGER NOT NULL,
  last_used INTEGER NOT NULL,
  inline_value BLOB
) WITHOUT ROWID;
CREATE INDEX entries_by_digest ON entries(digest);
CREATE INDEX entries_by_use ON entries(last_used);
CREATE TABLE leases(
  key BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL,
  started INTEGER
) WITHOUT ROWID;
CREATE TABLE in_use(
  digest BLOB NOT NULL,
  owner BLOB NOT NULL,
  id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  expires INTEGER NOT NULL,
  started INTEGER,
  PRIMARY KEY(digest, owner, id)
) WITHOUT ROWID;
CREATE TABLE runs(
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
CREATE INDEX runs_by_pipeline ON runs(pipeline, started);
CREATE INDEX runs_by_start ON runs(started);
CREATE TABLE steps(
  pipeline TEXT NOT NULL,
  step TEXT NOT NULL,
  key BLOB NOT NULL,
  components TEXT NOT NULL,
  run_id TEXT NOT NULL,
  recorded INTEGER NOT NULL,
  PRIMARY KEY(pipeline, step)
) WITHOUT ROWID;
PRAGMA user_version=4;
)sql";
  const digest key = key_of("from schema 4");
  const auto bytes = inline_value_for(4);
  std::string blob_literal;
  for (const std::byte b : bytes) blob_literal += fmt_hex(b);
  exec_sql(index, schema_4 + "INSERT INTO entries VALUES(X'" + key.hex() + "', X'" + digest_of(bytes).hex() + "', " +
                      std::to_string(bytes.size()) + ", X'" + bytes_type.hex() + "', 'old-run', 1, 2, X'" +
                      blob_literal + "');");
  ASSERT_EQ(query_integer(index, "SELECT count(*) FROM sqlite_master WHERE name = 'file_stats'"), 0);

  // Read-only first: it cannot migrate, but reads the entries, and knows no files.
  {
    cache_store_options options;
    options.read_only = true;
    cache_store store(dir.path(), options);
    std::vector<std::byte> out;
    EXPECT_TRUE(store.get(key, out).hit());
    EXPECT_FALSE(store.known_file(stat_row("/data/a.csv")));
    EXPECT_EQ(query_integer(index, "PRAGMA user_version"), 4);
  }
  {
    cache_store store(dir.path());
    EXPECT_EQ(query_integer(index, "PRAGMA user_version"), 5);
    EXPECT_EQ(query_integer(index, "SELECT count(*) FROM sqlite_master WHERE name = 'file_stats'"), 1);
    std::vector<std::byte> out;
    const cache_result got = store.get(key, out);
    ASSERT_TRUE(got.hit()) << got.message;
    EXPECT_EQ(out, bytes);
    const std::pair<file_stat_row, known_file_digest> rows[] = {{stat_row("/data/a.csv"), {key_of("a"), 1}}};
    store.remember_files(rows);
  }
  cache_store again(dir.path());
  EXPECT_EQ(again.known_file(stat_row("/data/a.csv"))->content, key_of("a"));
}
