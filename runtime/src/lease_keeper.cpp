// lease_keeper: one thread per run that renews the run's held leases every
// interval. A renewal is one small write transaction per lease.
#include "lease_keeper.hpp"

#include <exception>

namespace penstock::detail::r1 {

lease_keeper::lease_keeper(std::chrono::seconds ttl, std::chrono::milliseconds interval)
    : ttl_(ttl), interval_(interval) {}

lease_keeper::~lease_keeper() {
  {
    const std::scoped_lock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void lease_keeper::add(cache_lease* lease) {
  const std::scoped_lock lock(mutex_);
  leases_.insert(lease);
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
}

void lease_keeper::remove(cache_lease* lease) {
  // The loop renews under the mutex: once this has it, no renewal of
  // `lease` is running or will run.
  const std::scoped_lock lock(mutex_);
  leases_.erase(lease);
}

std::size_t lease_keeper::lost() const {
  const std::scoped_lock lock(mutex_);
  return lost_;
}

void lease_keeper::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
    if (stopping_) return;
    for (cache_lease* lease : leases_) {
      try {
        if (!lease->renew(ttl_)) ++lost_;
      } catch (const std::exception&) {
        // The index is busy or failing: the next round tries again, and the
        // lease lasts until its expiry meanwhile.
      }
    }
  }
}

}  // namespace penstock::detail::r1
