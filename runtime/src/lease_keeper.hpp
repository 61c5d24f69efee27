// lease_keeper: renews the cache leases a run holds while their steps (and
// map elements) compute, on one background thread, so that a process waiting
// for a key waits for a step of any length instead of computing it again.
// Private to the runtime: the cache session and the map element loop use it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "cache_store.hpp"

namespace penstock::detail::r1 {

class lease_keeper {
 public:
  // Every `interval`, each registered lease's expiry is pushed to now + ttl.
  lease_keeper(std::chrono::seconds ttl, std::chrono::milliseconds interval);
  lease_keeper(const lease_keeper&) = delete;
  lease_keeper& operator=(const lease_keeper&) = delete;
  ~lease_keeper();  // stops the thread; every lease must have been removed

  [[nodiscard]] std::chrono::seconds ttl() const noexcept { return ttl_; }

  // Registers a held lease. The thread starts on the first one.
  void add(cache_lease* lease);
  // Unregisters it, waiting for a renewal in progress: call it before the
  // lease is released, moved from or destroyed.
  void remove(cache_lease* lease);
  // How many renewals found their lease taken over (it had expired first).
  [[nodiscard]] std::size_t lost() const;

 private:
  void loop();

  std::chrono::seconds ttl_;
  std::chrono::milliseconds interval_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::size_t lost_ = 0;
  std::unordered_set<cache_lease*> leases_;
  std::thread thread_;
};

// Registers a lease with a keeper for a scope (nothing when either is null
// or the lease is not held).
class kept_lease {
 public:
  kept_lease(lease_keeper* keeper, cache_lease* lease) : keeper_(keeper), lease_(lease) {
    if (keeper_ != nullptr && lease_ != nullptr && lease_->held()) {
      keeper_->add(lease_);
    } else {
      keeper_ = nullptr;
    }
  }
  kept_lease(const kept_lease&) = delete;
  kept_lease& operator=(const kept_lease&) = delete;
  ~kept_lease() { stop(); }
  // Stops renewing (before the lease is released).
  void stop() {
    if (keeper_ != nullptr) keeper_->remove(lease_);
    keeper_ = nullptr;
  }

 private:
  lease_keeper* keeper_;
  cache_lease* lease_;
};

}  // namespace penstock::detail::r1
