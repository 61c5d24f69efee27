// cache_leases: leases (the right to compute a key) and in-use marks (a blob
// being read or written, which gc leaves alone), and whether their owners are still alive.
#include <chrono>
#include <cmath>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <sqlite3.h>

#include "cache_store_state.hpp"

namespace penstock::detail::r1 {

namespace {

constexpr const char* insert_mark_sql =
    "INSERT OR REPLACE INTO in_use(digest, owner, id, pid, host, expires, started) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* delete_mark_sql = "DELETE FROM in_use WHERE digest = ?1 AND owner = ?2 AND id = ?3";
constexpr const char* select_marks_of_sql =
    "SELECT owner, id, pid, host, expires, started FROM in_use WHERE digest = ?1";
constexpr const char* select_lease_sql = "SELECT owner, id, pid, host, expires, started FROM leases WHERE key = ?1";
constexpr const char* insert_lease_sql =
    "INSERT OR REPLACE INTO leases(key, owner, id, pid, host, expires, started) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr const char* delete_lease_sql = "DELETE FROM leases WHERE key = ?1 AND owner = ?2 AND id = ?3";
constexpr const char* renew_lease_sql = "UPDATE leases SET expires = ?4 WHERE key = ?1 AND owner = ?2 AND id = ?3";

}  // namespace

std::optional<owner_row> read_owner(const sqlite::query& q, int first) {
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

bool cache_store::state::live(const owner_row& o, std::int64_t at) const {
  if (o.expires <= at) return false;
  if (o.host != self.host) return true;  // another host: only the expiry tells
  return !self.other_gone(o.pid, o.started);
}

std::string cache_store::state::describe(const owner_row& o, std::int64_t at) const {
  const double seconds = static_cast<double>(o.expires - at) / 1e9;
  return fmt::format("process {} on {} ({} {:.1f} s{})", o.pid, o.host, seconds >= 0 ? "expires in" : "expired",
                     std::abs(seconds),
                     o.host == self.host && self.other_gone(o.pid, o.started) ? ", process gone" : "");
}

std::int64_t cache_store::state::insert_mark(const digest& content) {
  const std::int64_t id = next_id++;
  db.prepare(insert_mark_sql)
      .bind(1, content)
      .bind(2, self.token)
      .bind(3, id)
      .bind(4, std::int64_t{self.pid})
      .bind(5, std::string_view(self.host))
      .bind(6, expiry(now(), options.mark_ttl))
      .bind(7, self.started)
      .run();
  return id;
}

std::int64_t cache_store::state::mark(const digest& content) {
  auto guard = lock();
  return insert_mark(content);
}

void cache_store::state::unmark(const digest& content, std::int64_t id) {
  db.prepare(delete_mark_sql).bind(1, content).bind(2, self.token).bind(3, id).run();
}

void cache_store::state::unmark_after_failure(const digest& content, std::int64_t id) noexcept {
  if (id == 0) return;
  try {
    auto guard = lock();
    unmark(content, id);
  } catch (const std::exception& e) {
    // The failure being propagated matters more; the mark is dropped by the
    // first gc after this process exits (or when it expires).
    warn(fmt::format("{} (an in-use mark on blob {} stays until it expires)", e.what(), content.hex()));
  }
}

bool cache_store::state::marked(const digest& content, std::int64_t at) {
  auto q = db.prepare(select_marks_of_sql);
  q.bind(1, content);
  while (q.step()) {
    // An unreadable mark protects nothing (gc removes it).
    if (const auto owner = read_owner(q, 0); owner && live(*owner, at)) return true;
  }
  return false;
}

// ---- cache_store -------------------------------------------------------------

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

lease_attempt cache_store::try_acquire(const digest& key, std::chrono::seconds ttl) {
  auto& s = *state_;
  return s.guarded("try_acquire", [&] {
    s.require_writable("take a lease");
    auto guard = s.lock();
    lease_attempt attempt;
    sqlite::transaction tx(s.db, sqlite::transaction_kind::write);
    const std::int64_t at = s.now();
    const auto row = s.entry_row_of(key);
    const bool cached = row == state::entry_row::readable;
    if (row == state::entry_row::unreadable) s.delete_entry(key);  // recomputing replaces it anyway
    std::optional<owner_row> holder;
    if (!cached) {
      auto q = s.db.prepare(select_lease_sql);
      q.bind(1, key);
      if (q.step()) holder = read_owner(q, 0);
    }
    std::int64_t id = 0;
    if (cached) {
      attempt.status = lease_status::cached;
    } else if (holder && s.live(*holder, at)) {
      attempt.status = lease_status::held;
      attempt.holder = holder->owner == s.self.token ? std::string("this cache store") : s.describe(*holder, at);
    } else {
      if (holder) attempt.holder = s.describe(*holder, at);
      id = s.next_id++;
      s.db.prepare(insert_lease_sql)
          .bind(1, key)
          .bind(2, s.self.token)
          .bind(3, id)
          .bind(4, std::int64_t{s.self.pid})
          .bind(5, std::string_view(s.self.host))
          .bind(6, expiry(at, ttl))
          .bind(7, s.self.started)
          .run();
      attempt.status = lease_status::acquired;
    }
    tx.commit();
    // Only now: a lease whose row was rolled back must not be released.
    if (id != 0) attempt.lease = cache_lease(this, key, static_cast<std::uint64_t>(id));
    return attempt;
  });
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

// ---- cache_lease -------------------------------------------------------------

cache_lease::cache_lease(cache_lease&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)), key_(other.key_), id_(other.id_) {}

cache_lease& cache_lease::operator=(cache_lease&& other) noexcept {
  if (this != &other) {
    if (held()) {
      try {
        release();
      } catch (const std::exception& e) {
        store_->warn(fmt::format("{} (the lease on cache key {} expires on its own)", e.what(), key_.hex()));
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
    store_->warn(fmt::format("{} (the lease on cache key {} expires on its own)", e.what(), key_.hex()));
  }
}

bool cache_lease::renew(std::chrono::seconds ttl) {
  if (!held()) return false;
  auto& s = *store_->state_;
  return s.guarded("renew a lease", [&] {
    auto guard = s.lock();
    s.db.prepare(renew_lease_sql)
        .bind(1, key_)
        .bind(2, s.self.token)
        .bind(3, static_cast<std::int64_t>(id_))
        .bind(4, expiry(s.now(), ttl))
        .run();
    return s.db.changes() > 0;
  });
}

bool cache_lease::release() {
  if (!held()) return false;
  auto& s = *store_->state_;
  return s.guarded("release a lease", [&] {
    auto guard = s.lock();
    s.db.prepare(delete_lease_sql).bind(1, key_).bind(2, s.self.token).bind(3, static_cast<std::int64_t>(id_)).run();
    store_ = nullptr;
    return s.db.changes() > 0;
  });
}

}  // namespace penstock::detail::r1
