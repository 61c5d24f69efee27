// Map elements: a ps::map node's elements as parallel tasks (tbb::parallel_for),
// each retried on its own, and cached one by one on its content (a lease per
// element, so that concurrent runs compute each element once).
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include <penstock/detail/runtime_api.hpp>

#include "cache_session.hpp"
#include "cache_store.hpp"
#include "lease_keeper.hpp"

namespace penstock::detail::r1 {

namespace {

// Reads element i's result from the cache: true on a hit. A damaged entry
// is a reported miss (a note naming the element and what was wrong).
bool load_element(element_cache_hook& hook, const element_cache_functions& cache, void* data, std::size_t i,
                  std::size_t n, const digest& key) {
  try {
    const cache_result found = hook.store->load(key, [&](std::istream& in) { cache.load_result(data, i, in); });
    if (found.hit()) {
      hook.cached.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (found.status != cache_status::absent)
      hook.note(fmt::format("element {} of {}: {}; recomputed", i, n, found.message));
  } catch (const std::exception& e) {
    hook.note(fmt::format("element {} of {}: {}; recomputed", i, n, e.what()));
  }
  return false;
}

}  // namespace

void for_each_element(const context& node_ctx, std::size_t n, std::uint32_t retries,
                      void (*element_fn)(void* data, std::size_t i, context& element_ctx), void* data,
                      const element_cache_functions& cache) {
  auto* hook = static_cast<element_cache_hook*>(node_ctx.element_cache());
  if (cache.input_digest == nullptr || cache.save_result == nullptr || cache.load_result == nullptr) hook = nullptr;
  if (hook != nullptr) hook->total.fetch_add(n, std::memory_order_relaxed);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n), [&](const tbb::blocked_range<std::size_t>& range) {
    for (std::size_t i = range.begin(); i != range.end(); ++i) {
      context ctx = node_ctx.for_element(i);
      // Keyed on the element's content: read it back if cached, else lease
      // it (another process computing it is waited for), run it and store it.
      std::optional<digest> key;
      cache_lease lease;
      if (hook != nullptr) {
        key = hasher().update(hook->prefix).update(cache.input_digest(data, i)).finish();
        if (load_element(*hook, cache, data, i, n, *key)) continue;
        if (hook->store->read_only()) {
          key.reset();  // computed, not stored: no lease to take
        } else {
          try {
            lease_attempt attempt = acquire_lease(*hook->store, *key, hook->lease_ttl, hook->stop);
            if (attempt.status == lease_status::cached && load_element(*hook, cache, data, i, n, *key)) continue;
            if (attempt.status == lease_status::acquired) lease = std::move(attempt.lease);
          } catch (const std::exception& e) {
            hook->note(fmt::format("element {}: {}", i, e.what()));
          }
        }
      }
      kept_lease renewed(hook != nullptr ? hook->keeper : nullptr, &lease);
      for (std::uint32_t attempt = 0;; ++attempt) {
        ctx.throw_if_stop_requested();
        try {
          element_fn(data, i, ctx);
          break;
        } catch (const stop_requested_error&) {
          throw;
        } catch (const std::exception& e) {
          if (attempt >= retries || ctx.stop_requested()) {
            throw std::runtime_error(fmt::format("element {} of {}: {}", i, n, e.what()));
          }
        }
      }
      renewed.stop();  // put() releases the lease in its transaction
      if (key) {
        try {
          (void)hook->store->put(
              *key, [&](std::ostream& out) { return cache.save_result(data, i, out); },
              put_info{.type = hook->type, .run_id = hook->run_id}, lease.held() ? &lease : nullptr);
        } catch (const std::exception& e) {
          // Not stored: the element is computed again next time.
          hook->note(fmt::format("element {} was not stored in the cache: {}", i, e.what()));
        }
      }
    }
  });
}

}  // namespace penstock::detail::r1
