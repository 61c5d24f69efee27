// The executor: runs a lowered graph on oneTBB. A step starts as soon as its
// last input is ready (a per-node countdown, no level barriers). The task that
// finishes a step runs one ready successor itself and spawns the rest, so a
// chain costs no task spawns at all. A value is moved into its last consumer
// and released as soon as no consumer needs it.
// GPU steps on CUDA are asynchronous: once a GPU step's work is enqueued, its
// GPU consumers start at once (they wait for it on the device); its CPU
// consumers, its cache entry and the release of its inputs wait for a host
// callback saying the work is done (gpu_runtime.hpp).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <penstock/detail/runtime_api.hpp>

#include "cache_session.hpp"
#include "cache_store.hpp"
#include "file_values.hpp"
#include "gpu_runtime.hpp"
#include "progress.hpp"
#include "run_state.hpp"

namespace penstock {

std::string run_report::summary() const {
  std::string out = fmt::format("pipeline '{}': {} succeeded", pipeline, count(step_status::succeeded));
  if (const auto hits = cache_hits(); hits != 0) out += fmt::format(" ({} from cache)", hits);
  for (auto s : {step_status::failed, step_status::timed_out, step_status::skipped, step_status::cancelled,
                 step_status::not_run}) {
    if (const auto n = count(s); n != 0) out += fmt::format(", {} {}", n, to_string(s));
  }
  for (const auto& s : steps)
    if (s.elements_cached != 0)
      out += fmt::format(" ({}: {} of {} elements from cache)", s.name, s.elements_cached, s.elements);
  out += fmt::format(" in {:.3f} s", std::chrono::duration<double>(wall).count());
  if (gpu) out += fmt::format(" (GPU steps on {})", to_string(*gpu));
  if (interrupted) out += " (interrupted)";
  for (const auto& s : steps) {
    if (s.status == step_status::failed || s.status == step_status::timed_out) {
      out += fmt::format("\n  step '{}' {} after {} attempt{}: {}", s.name, to_string(s.status), s.attempts,
                         s.attempts == 1 ? "" : "s", s.error);
    }
  }
  return out;
}

namespace detail::r1 {

namespace {

using clock = std::chrono::steady_clock;

const std::atomic<bool> never_stop{false};

// One arena per requested concurrency, made on first use and reused by every
// later run. An arena per run costs its set-up on every run, and with oneTBB
// 2021.8 a destroyed arena is not freed at once: a process that runs many
// pipelines piles up arenas that keep competing for the worker threads.
// Concurrent runs with the same concurrency share one arena (each waits on
// its own task_group). Never destroyed: worker threads may still be leaving
// an arena during static destruction.
//
// A request above what oneTBB allows (max_allowed_parallelism: the cores,
// or a tbb::global_control limit) gets the allowed number, said once per
// request in penstock's words instead of oneTBB's "TBB Warning".
tbb::task_arena& arena_for(std::size_t threads) {
  static std::mutex mutex;
  static auto* arenas = new std::map<std::size_t, std::unique_ptr<tbb::task_arena>>;
  static auto* told = new std::set<std::size_t>;
  const std::scoped_lock lock(mutex);
  const std::size_t allowed = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  if (threads > allowed) {
    if (told->insert(threads).second) {
      fmt::print(stderr,
                 "penstock: run_options::threads = {} is more than the {} threads oneTBB allows here; using {}\n",
                 threads, allowed, allowed);
    }
    threads = allowed;
  }
  auto& arena = (*arenas)[threads];
  if (!arena) {
    arena = std::make_unique<tbb::task_arena>(threads == 0 ? tbb::task_arena::automatic : static_cast<int>(threads));
    arena->initialize();
  }
  return *arena;
}

// Removes a run's output directory unless a value still alive (an output
// whose file could not be stored) points into it.
void remove_unless_referenced(const graph_description& graph, run_state& state, const std::filesystem::path& base) {
  const std::string prefix = base.string() + "/";
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const auto& slot = graph.nodes[i].slot;
    if (slot.path_value == nullptr) continue;
    const path_value* value = slot.path_value(state.node_slots[i]);
    if (value == nullptr) continue;
    std::error_code ec;
    const std::string where = std::filesystem::absolute(value->raw_path(), ec).string();
    if (where.compare(0, prefix.size(), prefix) == 0) return;
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  std::filesystem::remove(base.parent_path(), ec);  // work/, when no other run is using it
}

}  // namespace

// Parameters are resolved before any step runs, so a bad value costs nothing.
void resolve_params(const graph_description& graph, run_state& state, const run_options& options) {
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    p.set_default(p.param, state.param_slots[i]);
  }
  for (const auto& [name, text] : options.params) {
    const auto it =
        std::find_if(graph.params.begin(), graph.params.end(), [&](const auto& p) { return p.name == name; });
    if (it == graph.params.end()) {
      std::string known;
      for (const auto& p : graph.params) known += (known.empty() ? "" : ", ") + std::string(p.name);
      throw param_error(fmt::format("unknown parameter '{}'; pipeline '{}' has {}", name, graph.name,
                                    known.empty() ? "no parameters" : "parameters: " + known));
    }
    try {
      it->parse(state.param_slots[static_cast<std::size_t>(it - graph.params.begin())], text);
    } catch (const std::exception& e) {
      throw param_error(fmt::format("parameter '{}' ({}): cannot use \"{}\": {}", name, it->type, text, e.what()));
    }
  }
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    if (!p.slot.has_value(state.param_slots[i])) {
      throw param_error(fmt::format("parameter '{}' ({}) has no value; pass --param {}=VALUE", p.name, p.type, p.name));
    }
  }
}

namespace {

class executor {
 public:
  executor(const graph_description& graph, run_state& state, const run_options& options, progress& shown,
           cache_session* cache, output_area* outputs)
      : graph_(graph),
        state_(state),
        cache_(cache),
        outputs_(outputs),
        gpu_(state.gpu.get()),
        gpu_async_(gpu_ != nullptr && gpu_->backend() == gpu_backend::cuda),
        stop_(options.stop != nullptr ? options.stop : &never_stop),
        shown_(shown),
        pending_(graph.nodes.size()),
        uses_left_(graph.nodes.size()),
        input_failed_(graph.nodes.size()),
        consumer_begin_(graph.nodes.size() + 1),
        reports_(graph.nodes.size()) {
    const std::size_t n = graph.nodes.size();
    std::vector<std::uint32_t> uses(n, 0);
    std::vector<std::uint32_t> pending(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      for (const auto& in : graph.nodes[i].inputs) {
        if (in.kind != input_kind::node) continue;
        ++uses[in.index];
        ++pending[i];
      }
    }
    for (auto o : graph.outputs) ++uses[o];  // outputs are kept for the caller
    if (gpu_async_) {
      // With the cache, an asynchronous GPU step's own completion is one more
      // use of its value: its consumers may not move it away before it is stored.
      if (cache_ != nullptr)
        for (std::size_t i = 0; i < n; ++i) uses[i] += on_gpu(i) ? 1 : 0;
      gpu_finish_.resize(n);
      if (cache_ != nullptr) {
        twins_.emplace(graph.nodes);
        twin_made_ = std::make_unique<std::once_flag[]>(n);
      }
      wakeups_.resize(n);
      gpu_started_.resize(n);
      for (std::uint32_t i = 0; i < n; ++i) wakeups_[i] = {this, i};
    }
    for (std::size_t i = 0; i < n; ++i) consumer_begin_[i + 1] = consumer_begin_[i] + uses[i];
    consumers_.resize(consumer_begin_[n]);
    std::vector<std::uint32_t> fill(consumer_begin_.begin(), consumer_begin_.end() - 1);
    for (std::size_t i = 0; i < n; ++i) {
      for (const auto& in : graph.nodes[i].inputs)
        if (in.kind == input_kind::node) consumers_[fill[in.index]++] = static_cast<std::uint32_t>(i);
      pending_[i].store(pending[i], std::memory_order_relaxed);
      uses_left_[i].store(uses[i], std::memory_order_relaxed);
      reports_[i].name = graph.nodes[i].name;
    }
    // consumers_ may list outputs' extra use as nothing: shrink the ranges
    // to the real consumers only.
    real_consumer_end_.resize(n);
    for (std::size_t i = 0; i < n; ++i) real_consumer_end_[i] = fill[i];
  }

  void run(std::size_t threads) {
    tbb::task_arena& arena = arena_for(threads);
    arena_ = &arena;
    // Sources are found before any task starts: once one runs, it counts
    // its consumers down to zero and starts them itself.
    std::vector<std::uint32_t> sources;
    for (std::uint32_t i = 0; i < graph_.nodes.size(); ++i)
      if (pending_[i].load(std::memory_order_relaxed) == 0) sources.push_back(i);
    arena.execute([&] {
      for (auto i : sources) tasks_.run([this, i] { run_from(i); });
      tasks_.wait();
    });
    // Pairs with the release in run_from: every report and output written by
    // a worker happens before the caller reads it.
    (void)finished_.load(std::memory_order_acquire);
  }

  std::vector<step_report> take_reports() { return std::move(reports_); }

 private:
  // Runs node `i`, then keeps going with one successor it made ready.
  void run_from(std::uint32_t i) {
    // One clock reading per step: the time a step ends is the time the next
    // one in this loop starts (the countdown between them takes nanoseconds,
    // a clock reading tens of them on some virtual machines).
    clock::time_point now = clock::now();
    for (;;) {
      const node_result result = run_node(i, now);
      // Still running on the device: only GPU consumers start now.
      const std::uint32_t next = count_down(i, result.ok, result.async ? consumers::gpu : consumers::all);
      if (next == none) break;
      i = next;
    }
    // The task's last act: pairs with the acquire after tasks_.wait().
    finished_.fetch_add(1, std::memory_order_release);
  }

  // The input slots of one step run, on the stack for up to 8 inputs.
  struct input_list {
    static constexpr std::size_t inline_inputs = 8;
    explicit input_list(std::size_t n) {
      if (n > inline_inputs) {
        heap_slots = std::make_unique<void*[]>(n);
        heap_moves = std::make_unique<bool[]>(n);
        slots = heap_slots.get();
        may_move = heap_moves.get();
      }
      std::fill(may_move, may_move + n, false);
    }
    void* inline_slots[inline_inputs];
    bool inline_moves[inline_inputs];
    std::unique_ptr<void*[]> heap_slots;
    std::unique_ptr<bool[]> heap_moves;
    void** slots = inline_slots;
    bool* may_move = inline_moves;
  };

  enum class consumers : std::uint8_t { all, gpu, cpu };

  // Counts node i's consumers of the kind `which` down (marking their input
  // failed unless `ok`); spawns those it made ready but one, which it returns
  // for the calling task to run (or `none`).
  std::uint32_t count_down(std::uint32_t i, bool ok, consumers which) {
    std::uint32_t next = none;
    for (std::uint32_t c = consumer_begin_[i]; c < real_consumer_end_[i]; ++c) {
      const std::uint32_t s = consumers_[c];
      if (which != consumers::all && on_gpu(s) != (which == consumers::gpu)) continue;
      if (!ok) input_failed_[s].store(true, std::memory_order_relaxed);
      if (pending_[s].fetch_sub(1, std::memory_order_acq_rel) == 1) {
        if (next != none) tasks_.run([this, next] { run_from(next); });
        next = s;
      }
    }
    return next;
  }

  struct node_result {
    bool ok = false;     // succeeded (so far, for an asynchronous GPU step)
    bool async = false;  // a GPU step still running on the device: finish_gpu() completes it
  };

  [[nodiscard]] bool on_gpu(std::size_t i) const noexcept { return graph_.nodes[i].options.where == placement::gpu; }

  // `now`: when the node starts; set to when it ended.
  node_result run_node(std::uint32_t i, clock::time_point& now) {
    // Acquire what every producer released when it counted this node down.
    // The thread that reached zero may have handed the node to this one
    // through oneTBB's queues; this load makes the edge explicit (and visible
    // to ThreadSanitizer, which cannot see inside an uninstrumented libtbb).
    (void)pending_[i].load(std::memory_order_acquire);
    const node_description& node = graph_.nodes[i];
    step_report& report = reports_[i];
    // After an interrupt nothing starts, and nothing is blamed on its inputs.
    if (stop_->load(std::memory_order_relaxed)) {
      report.status = step_status::not_run;
      release_inputs(node);
      return {};
    }
    if (input_failed_[i].load(std::memory_order_relaxed)) {
      report.status = step_status::skipped;
      release_inputs(node);
      return {};
    }
    if (cache_ != nullptr) {
      if (cache_->lookup(i, report) || cache_->begin_miss(i, report)) {
        shown_.cached(node.name);
        release_inputs(node);
        now = clock::now();
        return {.ok = report.status == step_status::succeeded};
      }
      // Inputs that were cache hits are read from the store now.
      for (const auto& in : node.inputs) {
        if (in.kind == input_kind::node && !materialize(in.index)) {
          report.status = step_status::failed;
          report.error = fmt::format("its input from step '{}' could not be read from the cache nor recomputed",
                                     graph_.nodes[in.index].name);
          cache_->abandon(i);
          shown_.started();
          shown_.finished(node.name, report.status, {});
          release_inputs(node);
          return {};
        }
      }
    }

    input_list inputs(node.inputs.size());
    for (std::size_t j = 0; j < node.inputs.size(); ++j) {
      const auto& in = node.inputs[j];
      // Every other consumer has finished: nobody else will read it, unless
      // one of them was a cache hit whose value may yet have to be computed
      // again from this one (its blob may turn out to be damaged).
      inputs.may_move[j] = in.kind == input_kind::node && node.options.retries == 0 &&
                           uses_left_[in.index].load(std::memory_order_acquire) == 1 && !read_again(in.index);
    }
    fill_inputs(node, inputs);

    shown_.started();
    // A map's elements are cached one by one; nothing to set up otherwise.
    std::optional<element_cache_hook> elements;
    if (cache_ != nullptr && node.kind == node_kind::map && !cache_->element_hook(i, elements.emplace()))
      elements.reset();
    const bool per_element = elements.has_value();
    if (cache_ != nullptr) now = clock::now();  // not counting the cache lookup and the inputs' loading
    const auto start = now;
    CUstream_st* stream = nullptr;  // stays null on the host backend
    if (gpu_async_ && on_gpu(i) && !begin_gpu_step(i, stream, report, &inputs)) {
      if (cache_ != nullptr) cache_->abandon(i);
      shown_.finished(node.name, report.status, {});
      release_inputs(node);
      return {};
    }
    {
      // A CPU step reads GPU values whose work is done: copied on their own stream.
      const completed_copies scope(gpu_async_ && !on_gpu(i) ? gpu_ : nullptr);
      attempt(node, inputs, state_.node_slots[i], report, per_element ? &*elements : nullptr, stream);
    }
    if (gpu_async_ && on_gpu(i)) {
      if (report.status == step_status::succeeded) return enqueue_finish(i, start, report, now);
      // It may have enqueued work that reads its inputs before it failed:
      // that work must be done before they can be freed.
      (void)wait_for_gpu_step(i);
    }
    if (per_element) {
      report.elements = elements->total.load(std::memory_order_relaxed);
      report.elements_cached = elements->cached.load(std::memory_order_relaxed);
      report.cache_note = elements->notes();
    }
    now = clock::now();
    report.duration = now - start;
    if (cache_ != nullptr) {
      if (report.status == step_status::succeeded) {
        cache_->store(i, report);
      } else {
        cache_->abandon(i);
      }
    }
    shown_.finished(node.name, report.status, report.duration);
    release_inputs(node);
    return {.ok = report.status == step_status::succeeded};
  }

  // A GPU step on CUDA whose work is enqueued: the rest happens in
  // finish_gpu, once the device is done.
  node_result enqueue_finish(std::uint32_t i, clock::time_point start, step_report& report, clock::time_point& now) {
    gpu_started_[i] = start;
    gpu_finish_[i].emplace(tasks_.defer([this, i] { finish_gpu(i); }));
    node_result result{.ok = true, .async = true};
    try {
      gpu_->end_step(i, &wake, &wakeups_[i]);
    } catch (const std::exception& e) {
      report.status = step_status::failed;
      report.error = e.what();
      tasks_.run(std::move(*gpu_finish_[i]));
      result.ok = false;
    }
    now = clock::now();
    return result;
  }

  // Makes the host wait for GPU step i's work, outside the schedule (a
  // recomputed input, or a step that failed after enqueuing work). False
  // when the device reports an error.
  bool wait_for_gpu_step(std::uint32_t i) {
    try {
      gpu_->end_step(
          i, [](void*) {}, nullptr);
      gpu_->wait_step(i);
      gpu_->check_step(i);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  // On CUDA: the stream of GPU step `i`, ordered after its GPU inputs. False,
  // the report saying why, when CUDA refuses. With `inputs`, a cache hit it
  // reads is given to it as its device twin.
  bool begin_gpu_step(std::uint32_t i, CUstream_st*& stream, step_report& report, input_list* inputs = nullptr) {
    const node_description& node = graph_.nodes[i];
    std::vector<std::uint32_t> after;  // GPU inputs enqueued in this run
    for (const auto& in : node.inputs)
      if (in.kind == input_kind::node && on_gpu(in.index) && !reports_[in.index].cache_hit) after.push_back(in.index);
    try {
      stream = gpu_->begin_step(i, after);
      for (std::size_t j = 0; inputs != nullptr && twins_ && j < node.inputs.size(); ++j) {
        const auto& in = node.inputs[j];
        if (in.kind != input_kind::node || !reports_[in.index].cache_hit) continue;
        if (graph_.nodes[in.index].slot.upload == nullptr) continue;
        inputs->slots[j] = device_twin(in.index, stream);
        inputs->may_move[j] = false;
      }
      return true;
    } catch (const std::exception& e) {
      report.status = step_status::failed;
      report.error = e.what();
      ++report.attempts;
      return false;
    }
  }

  // A GPU value read from the cache lives in host memory. The first GPU step
  // on CUDA that reads it uploads it, on its stream, into a twin of its slot
  // that every GPU consumer then reads (ordered after the upload by the
  // producer's event): a cache hit is uploaded once. A value already on the
  // device (recomputed) is read where it is.
  void* device_twin(std::uint32_t p, CUstream_st* stream) {
    const slot_functions& f = graph_.nodes[p].slot;
    void* twin = (*twins_)[p];
    std::call_once(twin_made_[p], [&] {
      if (f.upload(state_.node_slots[p], twin, gpu_->memory(), stream)) gpu_->mark_ready(p, stream);
    });
    if (!f.has_value(twin)) return state_.node_slots[p];
    gpu_->wait_for(p, stream);
    return twin;
  }

  // gpu_runtime::copy_completed_values for a scope; nothing for null.
  class completed_copies {
   public:
    explicit completed_copies(gpu_runtime* gpu) noexcept : gpu_(gpu) {
      if (gpu_ != nullptr) gpu_->copy_completed_values(true);
    }
    ~completed_copies() {
      if (gpu_ != nullptr) gpu_->copy_completed_values(false);
    }
    completed_copies(const completed_copies&) = delete;
    completed_copies& operator=(const completed_copies&) = delete;

   private:
    gpu_runtime* gpu_;
  };

  struct wakeup {
    executor* self = nullptr;
    std::uint32_t node = 0;
  };

  // Called on a CUDA thread once GPU step w->node's work is done: hands its
  // completion to the arena (no CUDA call here, as CUDA requires).
  static void wake(void* data) {
    auto* w = static_cast<wakeup*>(data);
    w->self->arena_->enqueue(std::move(*w->self->gpu_finish_[w->node]));
  }

  // The part of an asynchronous GPU step that needs its work done: errors
  // the device reported, its cache entry (the value is copied to the host
  // here, off the path of the GPU steps after it), the release of its inputs,
  // and its CPU consumers.
  void finish_gpu(std::uint32_t i) {
    const node_description& node = graph_.nodes[i];
    step_report& report = reports_[i];
    if (report.status == step_status::succeeded) {
      try {
        gpu_->check_step(i);
      } catch (const std::exception& e) {
        report.status = step_status::failed;
        report.error = e.what();
      }
    }
    report.duration = clock::now() - gpu_started_[i];
    if (cache_ != nullptr) {
      if (report.status == step_status::succeeded) {
        const completed_copies scope(gpu_);  // its work is done
        cache_->store(i, report);
      } else {
        cache_->abandon(i);
      }
    }
    shown_.finished(node.name, report.status, report.duration);
    release_inputs(node);
    if (cache_ != nullptr) release_value(i);
    // Its GPU consumers started when it was enqueued; this task goes on with
    // a CPU one.
    const std::uint32_t next = count_down(i, report.status == step_status::succeeded, consumers::cpu);
    finished_.fetch_add(1, std::memory_order_release);
    if (next != none) run_from(next);
  }

  void fill_inputs(const node_description& node, input_list& inputs) const {
    for (std::size_t j = 0; j < node.inputs.size(); ++j) {
      const auto& in = node.inputs[j];
      switch (in.kind) {
        case input_kind::node: inputs.slots[j] = state_.node_slots[in.index]; break;
        case input_kind::param: inputs.slots[j] = state_.param_slots[in.index]; break;
        case input_kind::constant: inputs.slots[j] = nullptr; break;
      }
    }
  }

  // Runs the step with its retries and time-out; sets status, attempts, error.
  void attempt(const node_description& node, input_list& inputs, void* output, step_report& report,
               element_cache_hook* elements = nullptr, CUstream_st* stream = nullptr) {
    const std::uint32_t retries = node.kind == node_kind::map ? 0 : node.options.retries;
    for (;;) {
      ++report.attempts;
      const auto deadline =
          node.options.timeout.count() > 0 ? clock::now() + node.options.timeout : clock::time_point::max();
      context ctx(node.name, stop_, deadline, &shown_, context::npos, elements);
      ctx.attach_outputs(outputs_);
      std::optional<gpu_context> gpu;
      if (gpu_ != nullptr && node.options.where == placement::gpu) {
        ctx.attach_gpu(
            &gpu.emplace(ctx, gpu_->backend(), gpu_->device(), stream, gpu_->memory(), gpu_->why_no_device()));
      }
      try {
        node.run(node.step, inputs.slots, inputs.may_move, output, ctx);
        check_files(node, output);
        if (ctx.timed_out()) {
          node.slot.clear(output);
          report.status = step_status::timed_out;
          report.error = timeout_message(node);
        } else {
          report.status = step_status::succeeded;
        }
        break;
      } catch (const stop_requested_error& e) {
        node.slot.clear(output);
        report.status = ctx.timed_out() ? step_status::timed_out : step_status::cancelled;
        report.error = ctx.timed_out() ? timeout_message(node) : e.what();
        break;
      } catch (const std::exception& e) {
        node.slot.clear(output);
        report.error = e.what();
      } catch (...) {
        node.slot.clear(output);
        report.error = "an exception that is not a std::exception";
      }
      if (ctx.timed_out()) {
        report.status = step_status::timed_out;
        report.error = timeout_message(node) + " (last error: " + report.error + ")";
        break;
      }
      if (report.attempts > retries || stop_->load(std::memory_order_relaxed)) {
        report.status = step_status::failed;
        break;
      }
    }
  }

 public:
  // Gives node p's slot its value if it was a lazily loaded cache hit (or
  // recomputes p when its blob is bad). Used for inputs and for outputs.
  bool materialize(std::uint32_t p) {
    return cache_->materialize(p, [this](std::uint32_t q) { return recompute(q); });
  }

 private:
  // Whether a lazily cached consumer of node p may still recompute itself
  // from p's value (with the cache only).
  [[nodiscard]] bool read_again(std::uint32_t p) const {
    if (cache_ == nullptr) return false;
    for (std::uint32_t c = consumer_begin_[p]; c < real_consumer_end_[p]; ++c)
      if (cache_->lazy(consumers_[c])) return true;
    return false;
  }

  // Keeps node p's value alive while a recomputation reads it: one more use,
  // taken even after the count reached zero (the value is then gone or
  // going, and materialize() computes it again).
  void pin(std::uint32_t p) { uses_left_[p].fetch_add(1, std::memory_order_acq_rel); }

  // Runs node q again outside the schedule, for a cached value that could
  // not be read. Its inputs are pinned and materialized first (recursively),
  // so that their other consumers cannot free them while q reads them.
  bool recompute(std::uint32_t q) {
    const node_description& node = graph_.nodes[q];
    struct unpin {
      executor* self;
      const node_description& node;
      ~unpin() { self->release_inputs(node); }
    } pins{this, node};
    for (const auto& in : node.inputs)
      if (in.kind == input_kind::node) pin(in.index);
    for (const auto& in : node.inputs)
      if (in.kind == input_kind::node && !materialize(in.index)) return false;
    input_list inputs(node.inputs.size());
    fill_inputs(node, inputs);
    step_report again;
    CUstream_st* stream = nullptr;
    if (gpu_async_ && on_gpu(q) && !begin_gpu_step(q, stream, again)) return false;
    attempt(node, inputs, state_.node_slots[q], again, nullptr, stream);
    // Outside the schedule: the host waits for it here.
    if (gpu_async_ && on_gpu(q) && !wait_for_gpu_step(q)) return false;
    if (again.status != step_status::succeeded) return false;
    cache_->store(q, again);
    return true;
  }

  // A step that returns a ps::file or ps::directory: it must be there and
  // readable; with the cache, it is hashed now (its stat recorded).
  void check_files(const node_description& node, void* output) const {
    if (node.slot.path_value == nullptr) return;
    path_value* value = node.slot.path_value(output);
    if (value == nullptr) return;
    try {
      if (cache_ != nullptr) {
        value->set_contents(hash_tree(value->kind(), value->path(), &cache_->store()));
      } else {
        check_readable(value->kind(), value->path());
      }
    } catch (const file_error& e) {
      throw file_error(fmt::format("it returned a {} that cannot be read: {}",
                                   value->kind() == path_kind::file ? "ps::file" : "ps::directory", e.what()));
    }
  }

  static std::string timeout_message(const node_description& node) {
    return fmt::format("exceeded its timeout of {:.3f} s", std::chrono::duration<double>(node.options.timeout).count());
  }

  // Drops each input's value once its last consumer is done with it.
  void release_inputs(const node_description& node) {
    for (const auto& in : node.inputs)
      if (in.kind == input_kind::node) release_value(in.index);
  }
  void release_value(std::uint32_t p) {
    if (uses_left_[p].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (cache_ == nullptr) {
      graph_.nodes[p].slot.clear(state_.node_slots[p]);
      return;
    }
    // A recomputation may have pinned the value since the count reached
    // zero: clear it only if it is still unused, under the lock that
    // materialize() holds while it checks and fills the slot.
    cache_->release_if_unused(p, uses_left_[p], state_.node_slots[p]);
  }

  static constexpr std::uint32_t none = static_cast<std::uint32_t>(-1);

  const graph_description& graph_;
  run_state& state_;
  cache_session* cache_;  // null: caching off
  output_area* outputs_;  // where steps write their files
  gpu_runtime* gpu_;      // null: no GPU steps
  bool gpu_async_;        // GPU steps run on CUDA, asynchronously
  tbb::task_arena* arena_ = nullptr;
  // Per node, for asynchronous GPU steps: the deferred completion task (the
  // task group waits for it from the moment it is made), what the host
  // callback is given, and when the step started.
  std::vector<std::optional<tbb::task_handle>> gpu_finish_;
  std::vector<wakeup> wakeups_;
  std::vector<clock::time_point> gpu_started_;
  // With the cache: device twins of cache hits, a slot per node, each made once.
  std::optional<slot_block> twins_;
  std::unique_ptr<std::once_flag[]> twin_made_;
  const std::atomic<bool>* stop_;
  progress& shown_;
  std::vector<std::atomic<std::uint32_t>> pending_;
  std::vector<std::atomic<std::uint32_t>> uses_left_;
  std::vector<std::atomic<bool>> input_failed_;
  std::vector<std::uint32_t> consumer_begin_;
  std::vector<std::uint32_t> real_consumer_end_;
  std::vector<std::uint32_t> consumers_;
  std::vector<step_report> reports_;
  std::atomic<std::size_t> finished_{0};
  tbb::task_group tasks_;
};

}  // namespace

run_outcome execute(const graph_description& graph, const run_options& options) {
  std::unique_ptr<gpu_runtime> gpu;
  if (std::any_of(graph.nodes.begin(), graph.nodes.end(),
                  [](const node_description& n) { return n.options.where == placement::gpu; })) {
    gpu = make_gpu_runtime(options.gpu, graph.nodes.size());
  }
  auto state = std::make_shared<run_state>(graph, std::move(gpu));
  resolve_params(graph, *state, options);

  const auto start = clock::now();
  std::unique_ptr<cache_session> cache;
  std::string cache_note;
  if (options.cache.enabled) {
    try {
      cache = std::make_unique<cache_session>(graph, *state, options.cache, options.stop);
    } catch (const cache_error& e) {
      // Nothing is lost: the run goes on without the cache, and says so.
      cache_note = fmt::format("the cache could not be used, every step runs: {}", e.what());
      fmt::print(stderr, "penstock: {}\n", cache_note);
    }
  }
  if (cache && cache->store().read_only()) {
    cache_note = fmt::format("the cache at {} is read-only ({}): hits are served, nothing is stored",
                             cache->store().directory().string(), cache->store().read_only_reason());
    fmt::print(stderr, "penstock: {}\n", cache_note);
  }
  if (!cache) seal_file_params(graph, *state, nullptr);  // with the cache, the session hashed them
  // Files the steps write go under the cache directory, per run; with the
  // cache, a stored file is handed on as its copy in the cache, and the
  // run's directory is removed at the end when no output still points into it.
  output_directories outputs((cache                             ? cache->store().directory()
                              : options.cache.directory.empty() ? default_cache_directory()
                                                                : std::filesystem::path(options.cache.directory)) /
                             "work" / (cache ? cache->run_id() : new_run_id()));
  progress shown(graph.name, graph.nodes.size(), options.progress, stderr);
  executor exec(graph, *state, options, shown, cache.get(), &outputs);
  exec.run(options.threads);
  shown.close();
  // The caller asks for the outputs: the only cached values read in a run
  // whose steps all hit.
  std::vector<std::uint32_t> unreadable;
  if (cache != nullptr)
    for (auto o : graph.outputs)
      if (cache->lazy(o) && !exec.materialize(o)) unreadable.push_back(o);

  run_outcome outcome{std::move(state), {}};
  outcome.report.pipeline = graph.name;
  outcome.report.steps = exec.take_reports();
  outcome.report.wall = clock::now() - start;
  outcome.report.interrupted = options.stop != nullptr && options.stop->load();
  if (cache != nullptr) {
    for (std::uint32_t i = 0; i < graph.nodes.size(); ++i) {
      auto& step = outcome.report.steps[i];
      // Not a hit after all: its value was computed (the summary and the run
      // record count it as computed).
      if (cache->recomputed(i)) {
        step.cache_hit = false;
        step.attempts = std::max<std::uint32_t>(step.attempts, 1);
      }
      if (cache->note(i).empty()) continue;
      step.cache_note += (step.cache_note.empty() ? "" : "; ") + cache->note(i);
    }
  }
  for (auto o : unreadable) {
    auto& r = outcome.report.steps[o];
    r.status = step_status::failed;
    r.error = "its cached output could not be read nor recomputed";
  }
  outcome.report.cache_note = std::move(cache_note);
  if (outcome.state->gpu != nullptr) {
    outcome.report.gpu = outcome.state->gpu->backend();
    outcome.report.gpu_host_synchronizations = outcome.state->gpu->host_synchronizations();
    const auto copies = outcome.state->gpu->copies();
    outcome.report.gpu_copies_to_device = copies.to_device;
    outcome.report.gpu_copies_to_host = copies.to_host;
  }
  if (cache != nullptr) {
    outcome.report.run_id = cache->run_id();
    cache->finish(outcome.report);
  }
  // A value that was released after its last consumer is not handed out:
  // output_slot() must return null for it, not an empty optional.
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    outcome.state->succeeded[i] = outcome.report.steps[i].status == step_status::succeeded &&
                                  graph.nodes[i].slot.has_value(outcome.state->node_slots[i]);
  if (cache != nullptr && outputs.used()) remove_unless_referenced(graph, *outcome.state, outputs.base());
  return outcome;
}

const void* output_slot(const run_state& state, std::size_t index) noexcept {
  if (index >= state.node_slots.size() || !state.succeeded[index]) return nullptr;
  return state.node_slots[index];
}

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

}  // namespace detail::r1
}  // namespace penstock
