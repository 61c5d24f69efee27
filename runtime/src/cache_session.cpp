#include "cache_session.hpp"

#include "command_keys.hpp"
#include "file_values.hpp"
#include "process_identity.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <oneapi/tbb/task_group.h>
#include <nlohmann/json.hpp>

#include <penstock/detail/code_fingerprints.hpp>

namespace penstock::detail::r1 {

namespace {

// One wait for another process's lease lasts at most this long before the
// stop flag is checked again (the wait itself goes on while the holder lives
// and renews its lease).
constexpr std::chrono::milliseconds lease_wait_slice{200};

// How many element notes a map's report quotes word for word.
constexpr std::size_t element_notes_kept = 5;

digest type_fingerprint(const node_description& node) { return hasher().update(node.output_type).finish(); }

}  // namespace

std::optional<digest> code_fingerprint(const node_description& node) noexcept {
  if (node.options.source_file.empty()) return std::nullopt;
  return source_fingerprint_of(node.options.source_file);
}

std::vector<node_code> codes_of(const graph_description& graph, cache_store* stats) {
  return codes_of(graph, [stats] { return stats; });
}

std::vector<node_code> codes_of(const graph_description& graph, const std::function<cache_store*()>& stats) {
  std::vector<node_code> out(graph.nodes.size());
  std::vector<const command_spec*> specs;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const node_description& node = graph.nodes[i];
    if (node.kind != node_kind::command) {
      out[i].code = code_fingerprint(node);
      continue;
    }
    specs.push_back(node.command);
    at.push_back(i);
  }
  if (specs.empty()) {
    (void)stats();  // the store is open when this returns, as with commands
    return out;
  }
  std::vector<command_fingerprint> found = fingerprint_commands(specs, stats);
  for (std::size_t k = 0; k < found.size(); ++k) {
    node_code& c = out[at[k]];
    c.code = found[k].digest_of_all;
    c.unkeyable = found[k].error;
    c.command = std::move(found[k]);
  }
  return out;
}

std::optional<digest> step_key(const node_description& node, std::span<const std::optional<digest>> inputs,
                               const std::optional<digest>& code) {
  if (node.kind == node_kind::command && !code) return std::nullopt;  // its program or a source is unreadable
  hasher h;
  h.update(std::string_view("penstock step key v1")).update(node.identity);
  h.update_value(static_cast<std::uint8_t>(code.has_value()));
  if (code) h.update(*code);
  h.update_value(static_cast<std::uint64_t>(inputs.size()));
  for (std::size_t j = 0; j < inputs.size(); ++j) {
    if (node.inputs[j].kind == input_kind::constant) continue;  // in the identity already
    if (!inputs[j]) return std::nullopt;
    h.update(*inputs[j]);
  }
  return h.finish();
}

std::string key_parts(const graph_description& graph, std::uint32_t i, const run_state& state,
                      std::span<const std::optional<digest>> inputs, const std::optional<digest>& code,
                      const std::optional<digest>& output, const command_fingerprint* command) {
  const node_description& node = graph.nodes[i];
  const auto hex = [](const std::optional<digest>& d) {
    return d ? nlohmann::json(d->hex()) : nlohmann::json(nullptr);
  };
  nlohmann::json parts;
  parts["identity"] = node.identity.hex();
  parts["version"] = node.options.version;
  parts["code"] = hex(code);
  parts["source"] = printable(node.options.source_file);
  parts["output"] = hex(output);
  if (command != nullptr && node.command != nullptr)
    parts["command"] = nlohmann::json::parse(command_parts(*node.command, *command), nullptr, false);
  auto& list = parts["inputs"] = nlohmann::json::array();
  for (std::size_t j = 0; j < node.inputs.size(); ++j) {
    const auto& in = node.inputs[j];
    nlohmann::json item;
    switch (in.kind) {
      case input_kind::node:
        item["kind"] = "step";
        item["name"] = std::string(graph.nodes[in.index].name);
        item["digest"] = hex(inputs[j]);
        break;
      case input_kind::param:
        item["kind"] = "param";
        item["name"] = std::string(graph.params[in.index].name);
        item["value"] = printable(graph.params[in.index].slot.format(state.param_slots[in.index]));
        item["digest"] = hex(inputs[j]);
        break;
      case input_kind::constant: item["kind"] = "constant"; break;
    }
    if (!in.projection.empty()) item["projection"] = std::string(in.projection);
    list.push_back(std::move(item));
  }
  // Every string above is printable(): replace is a second guard only.
  return parts.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::optional<digest>> param_digests(const graph_description& graph, const run_state& state) {
  std::vector<std::optional<digest>> out;
  out.reserve(graph.params.size());
  for (std::size_t p = 0; p < graph.params.size(); ++p) {
    const auto& slot = graph.params[p].slot;
    out.push_back(slot.hash != nullptr ? std::optional(slot.hash(state.param_slots[p])) : std::nullopt);
  }
  return out;
}

std::vector<bool> forced_steps(const graph_description& graph, std::span<const std::string> names) {
  std::vector<bool> forced(graph.nodes.size(), false);
  for (const auto& name : names) {
    const auto it = std::find_if(graph.nodes.begin(), graph.nodes.end(), [&](const auto& n) { return n.name == name; });
    if (it == graph.nodes.end()) {
      std::string known;
      for (const auto& n : graph.nodes) known += (known.empty() ? "" : ", ") + std::string(n.name);
      throw std::invalid_argument(fmt::format("no step named '{}'; the steps are: {}", name, known));
    }
    forced[static_cast<std::size_t>(it - graph.nodes.begin())] = true;
  }
  // Nodes are in topological order: a dependent comes after its producers.
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    for (const auto& in : graph.nodes[i].inputs)
      if (in.kind == input_kind::node && forced[in.index]) forced[i] = true;
  return forced;
}

std::vector<std::optional<digest>> input_digests(const node_description& node,
                                                 std::span<const std::optional<digest>> content,
                                                 std::span<const std::optional<digest>> params) {
  std::vector<std::optional<digest>> out(node.inputs.size());
  for (std::size_t j = 0; j < node.inputs.size(); ++j) {
    const auto& in = node.inputs[j];
    if (in.kind == input_kind::node) out[j] = content[in.index];
    if (in.kind == input_kind::param) out[j] = params[in.index];
  }
  return out;
}

cache_result load_contiguous(cache_store& store, const slot_functions& functions, const digest& key, void* slot,
                             std::string_view type) {
  std::uint64_t stored_count = 0;
  std::uint64_t count = 0;
  cache_result loaded = store.get_parts(key, [&](const cache_entry& entry) {
    std::span<std::byte> elements;
    if (!functions.prepare_contiguous(slot, entry.size, &count, &elements)) {
      throw cache_error(fmt::format("cannot load the value of cache entry {}: {} bytes cannot hold a value of type {}",
                                    key.hex(), entry.size, type));
    }
    return std::vector{std::as_writable_bytes(std::span(&stored_count, 1)), elements};
  });
  if (loaded.hit() && stored_count != count) {
    throw cache_error(fmt::format("cannot load the value of cache entry {}: it says {} elements in {} bytes", key.hex(),
                                  stored_count, loaded.entry.size));
  }
  return loaded;
}

lease_attempt acquire_lease(cache_store& store, const digest& key, std::chrono::seconds ttl,
                            const std::atomic<bool>* stop) {
  lease_attempt attempt = store.try_acquire(key, ttl);
  while (attempt.status == lease_status::held && (stop == nullptr || !stop->load(std::memory_order_relaxed))) {
    attempt = store.acquire_or_wait(key, ttl, lease_wait_slice);
  }
  return attempt;
}

void element_cache_hook::note(std::string text) {
  const std::scoped_lock lock(mutex_);
  if (notes_.size() < element_notes_kept) {
    notes_.push_back(std::move(text));
  } else {
    ++more_notes_;
  }
}

std::string element_cache_hook::notes() const {
  const std::scoped_lock lock(mutex_);
  std::string out;
  for (const auto& n : notes_) out += (out.empty() ? "" : "; ") + n;
  if (more_notes_ != 0) out += fmt::format("; and {} more element{}", more_notes_, more_notes_ == 1 ? "" : "s");
  return out;
}

std::string new_run_id() {
  const auto now = std::chrono::system_clock::now();
  return fmt::format("{:%Y%m%dT%H%M%S}Z-{}-{:08x}", std::chrono::floor<std::chrono::seconds>(now),
                     static_cast<long>(::getpid()), random_u32());
}

namespace {
cache_store_options store_options(const cache_options& options) {
  cache_store_options out;
  out.read_only = options.read_only;
  return out;
}
}  // namespace

cache_session::cache_session(const graph_description& graph, run_state& state, const cache_options& options,
                             std::string run_id, const std::atomic<bool>* stop)
    : graph_(graph),
      state_(state),
      stop_(stop),
      keeper_(options.lease_ttl, options.lease_renewal),
      run_id_(std::move(run_id)),
      forced_(forced_steps(graph, options.rerun)),
      content_(graph.nodes.size()),
      nodes_(std::make_unique<node_state[]>(graph.nodes.size())),
      started_(std::chrono::system_clock::now()) {
  // The store opens (its directories, SQLite, a migration: a few hundred
  // microseconds) on one of the run's threads while the commands' programs
  // and sources are resolved and stat'ed on the others; the stat cache is
  // first asked once every file is stat'ed.
  std::exception_ptr open_failed;
  tbb::task_group opening;
  opening.run([&] {
    try {
      store_ = std::make_unique<cache_store>(
          options.directory.empty() ? default_cache_directory() : std::filesystem::path(options.directory),
          store_options(options));
    } catch (...) {
      open_failed = std::current_exception();
    }
  });
  const auto opened = [&]() -> cache_store* {
    opening.wait();
    if (open_failed) std::rethrow_exception(std::exchange(open_failed, nullptr));
    return store_.get();
  };
  std::vector<node_code> codes;
  try {
    codes = codes_of(graph, opened);
  } catch (...) {
    opening.wait();  // the task refers to this frame
    throw;
  }
  seal_file_params(graph, state, store_.get());
  param_digests_ = param_digests(graph, state);
  code_.reserve(graph.nodes.size());
  commands_.resize(graph.nodes.size());
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    code_.push_back(codes[i].code);
    commands_[i] = std::move(codes[i].command);
  }
  plan();
}

// Looks up, level by level, every key that can be known before anything
// runs: a step whose inputs are parameters and planned hits. One read
// transaction per level (100 for 100 chains of 100 steps) instead of one
// per step, and nothing to ask the store again when the step comes up.
void cache_session::plan() {
  const std::size_t n = graph_.nodes.size();
  std::vector<std::uint32_t> depth(n, 0);
  std::uint32_t deepest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& in : graph_.nodes[i].inputs)
      if (in.kind == input_kind::node) depth[i] = std::max(depth[i], depth[in.index] + 1);
    deepest = std::max(deepest, depth[i]);
  }
  std::vector<std::vector<std::uint32_t>> levels(n == 0 ? 0 : deepest + 1);
  for (std::uint32_t i = 0; i < n; ++i) levels[depth[i]].push_back(i);

  std::vector<std::uint32_t> asked;
  std::vector<digest> keys;
  for (const auto& level : levels) {
    asked.clear();
    keys.clear();
    for (auto i : level) {
      const node_description& node = graph_.nodes[i];
      if (forced_[i] || !node.cacheable || node.options.cache == cache_policy::never) continue;
      compute_key(i);
      if (!nodes_[i].key) continue;
      asked.push_back(i);
      keys.push_back(*nodes_[i].key);
    }
    if (keys.empty()) continue;
    std::vector<cache_result> found;
    try {
      found = store_->lookup(keys);
    } catch (const cache_error&) {
      return;  // the run looks each step up itself, and reports what fails
    }
    for (std::size_t k = 0; k < asked.size(); ++k) {
      if (!found[k].hit()) continue;
      auto& me = nodes_[asked[k]];
      me.planned_hit = true;
      content_[asked[k]] = found[k].entry.content;
      me.last_used = found[k].entry.last_used;
    }
  }
}

cache_session::~cache_session() {
  // The keeper's thread must not renew a lease that is going away.
  for (std::size_t i = 0; i < graph_.nodes.size(); ++i) keeper_.remove(&nodes_[i].lease);
}

void cache_session::compute_key(std::uint32_t i) {
  const node_description& node = graph_.nodes[i];
  auto& me = nodes_[i];
  if (me.key) return;
  me.key = step_key(node, input_digests(node, content_, param_digests_), code_[i]);
}

bool cache_session::lookup(std::uint32_t i, step_report& report) {
  const node_description& node = graph_.nodes[i];
  compute_key(i);
  auto& me = nodes_[i];
  report.key = me.key;
  if (!me.key || forced_[i] || !node.cacheable || node.options.cache == cache_policy::never) return false;
  if (!me.planned_hit) {
    cache_result found;
    try {
      found = store_->lookup(*me.key);
    } catch (const std::exception& e) {
      report.cache_note = e.what();
      return false;
    }
    if (!found.hit()) {
      report.cache_note = found.message;
      return false;
    }
    content_[i] = found.entry.content;
    me.last_used = found.entry.last_used;
  }
  // The value stays in the store. A blob that turns out to be missing or
  // damaged when it is read is a reported miss, and the value is computed.
  me.lazy.store(true, std::memory_order_release);
  report.cache_hit = true;
  report.status = step_status::succeeded;
  return true;
}

bool cache_session::begin_miss(std::uint32_t i, step_report& report) {
  const node_description& node = graph_.nodes[i];
  auto& me = nodes_[i];
  if (!me.key || !node.cacheable || node.options.cache == cache_policy::never || store_->read_only()) return false;
  try {
    lease_attempt attempt = acquire_lease(*store_, *me.key, keeper_.ttl(), stop_);
    if (attempt.status == lease_status::acquired) {
      me.lease = std::move(attempt.lease);
      keeper_.add(&me.lease);  // renewed until store() or abandon()
      return false;
    }
    // Cached now (another process stored it, or --rerun of a step whose
    // entry exists: forced steps recompute whatever the index says).
    if (attempt.status == lease_status::cached && !forced_[i]) return lookup(i, report);
  } catch (const std::exception& e) {
    report.cache_note = e.what();
  }
  return false;
}

bool cache_session::materialize(std::uint32_t p, const std::function<bool(std::uint32_t)>& recompute) {
  const node_description& node = graph_.nodes[p];
  auto& me = nodes_[p];
  const std::scoped_lock lock(me.mutex);
  void* slot = state_.node_slots[p];
  if (node.slot.has_value(slot)) return true;
  if (me.lazy.load(std::memory_order_acquire) && me.key && node.slot.load != nullptr) {
    try {
      const cache_result loaded = node.slot.prepare_contiguous != nullptr
                                      ? load_contiguous(*store_, node.slot, *me.key, slot, node.output_type)
                                      : store_->load(*me.key, [&](std::istream& in) { node.slot.load(slot, in); });
      if (loaded.hit() && loaded.entry.content == *content_[p]) {
        for (std::size_t k = 0; k < node.slot.path_value_count; ++k)
          restore_files(*store_, *node.slot.path_value(slot, k));  // a cache_error: a reported miss, below
        return true;
      }
      if (!loaded.hit()) {
        me.note = loaded.message.empty()
                      ? "its cache entry was removed during the run (by cache gc in another process); recomputed"
                      : loaded.message;
      } else {
        me.note = "its cache entry was replaced during the run; recomputed";
      }
    } catch (const std::exception& e) {
      me.note = fmt::format("{}; recomputed", e.what());
    }
    node.slot.clear(slot);
  }
  // Recompute: a bad blob, or a value already released to its consumers.
  // Keys already computed from the old digest stay as they are, so a step
  // that recomputes to different bytes is reported.
  if (!recompute(p)) return false;
  me.recomputed = true;
  if (content_[p] && me.recomputed_content && *me.recomputed_content != *content_[p]) {
    me.note +=
        "; recomputed to a different value than its cache entry had: the step is not deterministic "
        "(declare it .cache(ps::never))";
  }
  return true;
}

std::optional<digest> cache_session::put(std::uint32_t i) {
  const node_description& node = graph_.nodes[i];
  auto& me = nodes_[i];
  const void* slot = state_.node_slots[i];
  // put() releases the lease in its transaction: no renewal may run meanwhile.
  keeper_.remove(&me.lease);
  // A file or directory: its bytes first, so that an entry never names
  // files the cache does not have.
  for (std::size_t k = 0; k < node.slot.path_value_count; ++k)
    store_files(*store_, *node.slot.path_value(state_.node_slots[i], k), run_id_);
  const put_result put = store_->put(
      *me.key, [&](std::ostream& out) { return node.slot.save(slot, out); },
      put_info{.type = type_fingerprint(node), .run_id = run_id_}, me.lease.held() ? &me.lease : nullptr);
  // Handed on as its read-only copy in the cache, as on a hit, so that the
  // run's output directory can go.
  for (std::size_t k = 0; k < node.slot.path_value_count; ++k)
    restore_files(*store_, *node.slot.path_value(state_.node_slots[i], k));
  return put.content;
}

void cache_session::store(std::uint32_t i, step_report& report) {
  const node_description& node = graph_.nodes[i];
  auto& me = nodes_[i];
  const void* slot = state_.node_slots[i];
  // A read-only cache stores nothing; the run said so once (executor.cpp).
  const bool cacheable = me.key && node.cacheable && node.options.cache == cache_policy::normal && !store_->read_only();
  std::optional<digest> produced;
  // A failure to store (a full disk, an I/O error, bytes the serializer
  // rejects) is a warning: the value is used by this run as without a cache.
  try {
    if (cacheable) produced = put(i);
  } catch (const std::exception& e) {
    report.cache_note = fmt::format("its output was not stored in the cache: {}", e.what());
  } catch (...) {
    report.cache_note = "its output was not stored in the cache: an exception that is not a std::exception";
  }
  // Dependents' keys need the digest even when the value is not stored; a
  // value that cannot even be hashed leaves them without a key (they run).
  if (!produced && node.slot.hash != nullptr) {
    try {
      produced = node.slot.hash(slot);
    } catch (const std::exception& e) {
      if (report.cache_note.empty()) report.cache_note = fmt::format("its output cannot be hashed: {}", e.what());
    }
  }
  // A hit recomputed by materialize() keeps the digest its dependents' keys
  // were computed from (they may be reading it now); the new one is compared.
  if (content_[i]) {
    me.recomputed_content = produced;
  } else {
    content_[i] = produced;
  }
  release(me.lease);
}

void cache_session::release(cache_lease& lease) noexcept {
  keeper_.remove(&lease);
  try {
    if (lease.held()) lease.release();
  } catch (const std::exception&) {
    // The index failed: the lease expires by itself (lease_ttl).
  }
}

bool cache_session::element_hook(std::uint32_t i, element_cache_hook& hook) {
  const node_description& node = graph_.nodes[i];
  if (node.kind != node_kind::map || !node.cacheable || node.options.cache != cache_policy::normal || forced_[i])
    return false;
  hasher prefix;
  prefix.update(std::string_view("penstock map element v1")).update(node.identity);
  prefix.update_value(static_cast<std::uint8_t>(code_[i].has_value()));
  if (code_[i]) prefix.update(*code_[i]);
  hook.store = store_.get();
  hook.keeper = &keeper_;
  hook.lease_ttl = keeper_.ttl();
  hook.stop = stop_;
  hook.prefix = prefix.finish();
  hook.type = type_fingerprint(node);
  hook.run_id = run_id_;
  return true;
}

void cache_session::release_if_unused(std::uint32_t p, const std::atomic<std::uint32_t>& uses, void* slot) {
  const std::scoped_lock lock(nodes_[p].mutex);
  if (uses.load(std::memory_order_acquire) == 0) graph_.nodes[p].slot.clear(slot);
}

void cache_session::abandon(std::uint32_t i) { release(nodes_[i].lease); }

std::optional<std::string> cache_session::finish(const run_report& report) {
  // Bookkeeping only: whatever fails here is a warning, never the run's failure.
  try {
    record(report);
  } catch (const std::exception& e) {
    return fmt::format("could not record run {} in the cache: {}", run_id_, e.what());
  }
  return std::nullopt;
}

std::optional<digest> cache_session::output_digest(std::uint32_t i) const noexcept {
  if (nodes_[i].recomputed_content) return nodes_[i].recomputed_content;
  return content_[i];
}

void cache_session::record(const run_report& report) {
  for (std::uint32_t i = 0; i < graph_.nodes.size(); ++i) release(nodes_[i].lease);
  if (store_->read_only()) return;  // nothing to mark used, nowhere to record the run
  // Hits not marked used within the store's touch_interval are marked now
  // (gc's least recently used order); fresher ones are left alone, so a
  // no-op rerun writes nothing but its run record.
  std::vector<digest> used;
  std::vector<step_record> records;
  for (std::uint32_t i = 0; i < graph_.nodes.size(); ++i) {
    const node_description& node = graph_.nodes[i];
    auto& me = nodes_[i];
    if (!me.key) continue;
    const step_report& step = report.steps[i];
    if (step.cache_hit) {
      if (!store_->fresh(me.last_used)) used.push_back(*me.key);
      continue;
    }
    // `explain` compares with the last run that produced each step.
    if (step.status != step_status::succeeded) continue;
    const auto inputs = input_digests(node, content_, param_digests_);
    records.push_back(step_record{.pipeline = std::string(graph_.name),
                                  .step = std::string(node.name),
                                  .key = *me.key,
                                  .components = key_parts(graph_, i, state_, inputs, code_[i], content_[i],
                                                          commands_[i] ? &*commands_[i] : nullptr),
                                  .run_id = run_id_,
                                  .when = std::chrono::system_clock::now()});
  }
  run_record run{.run_id = run_id_,
                 .pipeline = std::string(graph_.name),
                 .started = started_,
                 .wall = report.wall,
                 .steps = report.steps.size(),
                 .hits = report.cache_hits(),
                 .computed = 0,
                 .reported_misses = 0,
                 .failed = 0};
  for (const auto& s : report.steps) {
    if (s.status == step_status::succeeded && !s.cache_hit) ++run.computed;
    if (s.status == step_status::failed || s.status == step_status::timed_out) ++run.failed;
    if (!s.cache_note.empty()) ++run.reported_misses;
  }
  if (!used.empty()) store_->touch(used);
  if (!records.empty()) store_->record_steps(records);
  store_->record_run(run);
}

}  // namespace penstock::detail::r1
