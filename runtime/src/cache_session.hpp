// cache_session: the step cache during one run (design.md, "Caching model").
// The executor asks it, node by node as each becomes ready:
//   1. lookup(i): computes the node's key from its identity, its code
//      fingerprint and the content digests of its inputs, and looks the key
//      up in the index only. On a hit the node's output digest is known and
//      nothing is read: the value stays in the store (lazy loading) until a
//      consumer that must run, or the caller, needs it.
//   2. begin_miss(i): takes the key's lease, so that no other process
//      computes the same key at the same time; if another process stored it
//      meanwhile, the miss turns into a hit.
//   3. materialize(p): gives a lazily cached input a value, loading and
//      verifying it, or recomputing it when its blob turns out to be missing
//      or corrupt (a reported miss, never a wrong value).
//   4. store(i): after a successful run, writes the output (hashed while it
//      is written) and records its content digest for the dependents' keys.
//      A rerun that produces the same bytes gives the same digest, so its
//      dependents still hit (early cutoff).
// Private to the runtime.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <penstock/digest.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/run_report.hpp>

#include "cache_store.hpp"
#include "command_keys.hpp"
#include "lease_keeper.hpp"
#include "printable.hpp"
#include "run_state.hpp"

namespace penstock::detail::r1 {

// The content digest of the source file a step was written in, when the
// binary registered it (penstock_code_fingerprints); else nullopt.
[[nodiscard]] std::optional<digest> code_fingerprint(const node_description& node) noexcept;

// A node's key: identity, code fingerprint and input digests. nullopt when
// an input's digest is unknown (an output that cannot be hashed, or a
// parameter that cannot be serialized).
// What a node's key takes beyond its identity and inputs, found when a run
// starts: a step's code fingerprint; a command's program, sources and
// environment (command_keys.hpp), their parts as JSON for `explain`, or
// why they could not be read (the command then runs uncached, and fails
// saying so if it cannot start).
struct node_code {
  std::optional<digest> code;
  std::optional<command_fingerprint> command{};
  std::string unkeyable{};
};
// Every node's, at once (command_keys.hpp: one look at the stat cache).
[[nodiscard]] std::vector<node_code> codes_of(const graph_description& graph, cache_store* stats);
// The same, with the store asked for once the commands' files are stat'ed
// (cache_session opens it meanwhile).
[[nodiscard]] std::vector<node_code> codes_of(const graph_description& graph,
                                              const std::function<cache_store*()>& stats);

[[nodiscard]] std::optional<digest> step_key(const node_description& node,
                                             std::span<const std::optional<digest>> inputs,
                                             const std::optional<digest>& code);

// What went into node i's key, as JSON (step records; `explain` compares
// them): identity, version, code fingerprint and source file, and each
// input's kind, name, digest (and a parameter's value).
[[nodiscard]] std::string key_parts(const graph_description& graph, std::uint32_t i, const run_state& state,
                                    std::span<const std::optional<digest>> inputs, const std::optional<digest>& code,
                                    const std::optional<digest>& output, const command_fingerprint* command = nullptr);

// Each parameter's content digest (nullopt when its type cannot be hashed).
[[nodiscard]] std::vector<std::optional<digest>> param_digests(const graph_description& graph, const run_state& state);

// The steps named by --rerun / cache_options::rerun and every step that
// depends on one of them. Throws std::invalid_argument for a name that is no
// step of the pipeline, listing its steps.
[[nodiscard]] std::vector<bool> forced_steps(const graph_description& graph, std::span<const std::string> names);

// The digest of each input of `node`: its producer's output digest from
// `content`, a parameter's from `params`, nullopt for a constant (whose
// digest is in the identity) or an unknown value.
[[nodiscard]] std::vector<std::optional<digest>> input_digests(const node_description& node,
                                                               std::span<const std::optional<digest>> content,
                                                               std::span<const std::optional<digest>> params);

// Loads a contiguous value (value_traits<T>::contiguous, `functions`
// .prepare_contiguous not null) into `slot` straight from the store: its
// element count into 8 bytes apart, its elements into the value's own
// storage, no stream and no second copy. Throws cache_error when the stored
// size or count cannot be a value of `type`. On anything but a hit the slot's
// contents are unspecified: the caller clears it.
[[nodiscard]] cache_result load_contiguous(cache_store& store, const slot_functions& functions, const digest& key,
                                           void* slot, std::string_view type);

// A new run id: UTC time, host process id and a random suffix.
[[nodiscard]] std::string new_run_id();

// Takes the lease on `key`, waiting for as long as another live process
// holds it (that process renews it while it computes): returns acquired,
// cached (the other process stored it), or held when `stop` was set first.
[[nodiscard]] lease_attempt acquire_lease(cache_store& store, const digest& key, std::chrono::seconds ttl,
                                          const std::atomic<bool>* stop);

// A ps::map's per-element cache during one attempt (context::element_cache()
// points at it). An element being computed is leased like a step, so two
// processes whose vectors share elements compute each once; a damaged
// element is a reported miss (`notes`), then computed.
struct element_cache_hook {
  cache_store* store = nullptr;
  lease_keeper* keeper = nullptr;
  std::chrono::seconds lease_ttl{0};
  const std::atomic<bool>* stop = nullptr;
  digest prefix;  // the map's identity and code fingerprint
  digest type;
  std::string_view run_id;
  std::atomic<std::size_t> total{0};
  std::atomic<std::size_t> cached{0};

  // A reported miss or a failure to store an element (thread-safe); the
  // first few are kept word for word, the rest counted.
  void note(std::string text);
  // What note() kept, as one line for the step's report ("" if nothing).
  [[nodiscard]] std::string notes() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> notes_;
  std::size_t more_notes_ = 0;
};

class cache_session {
 public:
  // Opens the store; throws cache_error if it cannot be opened. `run_id`
  // names the run in the store; `stop` (may be null) ends waits for other
  // processes' leases.
  cache_session(const graph_description& graph, run_state& state, const cache_options& options, std::string run_id,
                const std::atomic<bool>* stop = nullptr);
  cache_session(const cache_session&) = delete;
  cache_session& operator=(const cache_session&) = delete;
  ~cache_session();

  [[nodiscard]] const std::string& run_id() const noexcept { return run_id_; }
  [[nodiscard]] cache_store& store() noexcept { return *store_; }

  // Step 1. True on a hit: the report is marked and the node's value is
  // left in the store.
  bool lookup(std::uint32_t i, step_report& report);

  // Step 2: holds the key's lease until store() or the end of the run.
  // True if the key turned out to be cached after all (another process
  // computed it while this one waited): treat as a hit.
  bool begin_miss(std::uint32_t i, step_report& report);

  // Step 3: makes sure node p's slot holds its value. `recompute(p)` runs
  // p's step again (its inputs first materialized by the caller's own
  // recursion) and returns whether it succeeded. False if p has no value
  // and cannot get one.
  bool materialize(std::uint32_t p, const std::function<bool(std::uint32_t)>& recompute);

  // Sets up `hook` for map node i; false when its elements are not cached
  // (caching off for the step, or --rerun).
  bool element_hook(std::uint32_t i, element_cache_hook& hook);

  // For the executor's release of node p's value once its use count is
  // zero: clears the slot unless a recomputation pinned it again meanwhile
  // (`uses` is read under the lock materialize() holds).
  void release_if_unused(std::uint32_t p, const std::atomic<std::uint32_t>& uses, void* slot);

  // Step 4, after node i ran successfully.
  void store(std::uint32_t i, step_report& report);
  // After node i failed: gives its lease back.
  void abandon(std::uint32_t i);

  // Whether the node's slot was filled from the store only when needed
  // (its value is not in memory until materialize()).
  [[nodiscard]] bool lazy(std::uint32_t i) const noexcept { return nodes_[i].lazy.load(std::memory_order_acquire); }

  // Reported misses found while materializing node i (a bad blob that was
  // recomputed); read after the run.
  [[nodiscard]] const std::string& note(std::uint32_t i) const noexcept { return nodes_[i].note; }
  // Whether node i was a hit whose value could not be read and was computed.
  [[nodiscard]] bool recomputed(std::uint32_t i) const noexcept { return nodes_[i].recomputed; }

  // At the end of the run: records the run and each keyed step's key parts
  // (for `explain`), and marks the entries it used as recently used. What
  // failed, as a warning (the run is not failed for it).
  [[nodiscard]] std::optional<std::string> finish(const run_report& report);

  // Node i's output content digest after the run (computed or cached), if known.
  [[nodiscard]] std::optional<digest> output_digest(std::uint32_t i) const noexcept;

 private:
  struct node_state {
    std::optional<digest> key;
    std::atomic<bool> lazy{false};  // hit, value not loaded
    std::mutex mutex;               // serializes materialize()
    cache_lease lease;
    // Written under `mutex`: a reported miss; whether a hit had to be
    // computed after all, and the digest it was computed to.
    std::string note;
    bool recomputed = false;
    std::optional<digest> recomputed_content;
    bool planned_hit = false;                           // found by plan() before the run started
    std::chrono::system_clock::time_point last_used{};  // of its entry, on a hit
  };

  void compute_key(std::uint32_t i);
  void plan();
  // Stops renewing `lease` and gives it back (a failure is left to its expiry).
  void release(cache_lease& lease) noexcept;
  void record(const run_report& report);

  // Stores node i's output; throws whatever the store or the value's
  // serialization throws (store() turns it into a warning).
  std::optional<digest> put(std::uint32_t i);

  const graph_description& graph_;
  run_state& state_;
  std::unique_ptr<cache_store> store_;
  const std::atomic<bool>* stop_;
  lease_keeper keeper_;
  std::string run_id_;
  std::vector<std::optional<digest>> param_digests_;
  std::vector<std::optional<digest>> code_;
  std::vector<std::optional<command_fingerprint>> commands_;  // per node; nullopt but for commands
  std::vector<bool> forced_;                                  // run_options::cache.rerun and their dependents
  // Each node's output content digest, for its dependents' keys: written by
  // the node's own task before it counts its consumers down.
  std::vector<std::optional<digest>> content_;
  std::unique_ptr<node_state[]> nodes_;
  std::chrono::system_clock::time_point started_;
};

}  // namespace penstock::detail::r1
