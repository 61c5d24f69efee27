// Scheduling: runs a lowered graph on oneTBB. A step starts as soon as its
// last input is ready (a per-node countdown, no level barriers). The task that
// finishes a step runs one ready successor itself and spawns the rest, so a
// chain costs no task spawns at all. A value is moved into its last consumer
// and released as soon as no consumer needs it. Asynchronous GPU steps are
// finished in gpu_completion.cpp; each attempt of a step runs in attempts.cpp.
#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include "cache_session.hpp"
#include "executor.hpp"
#include "gpu_runtime.hpp"
#include "run_state.hpp"

namespace penstock::detail::r1 {

namespace {

const std::atomic<bool> never_stop{false};

}  // namespace

// One arena per requested concurrency, made on first use and reused by every
// later run. An arena per run costs its set-up on every run, and with oneTBB
// 2021.8 a destroyed arena is not freed at once: a process that runs many
// pipelines piles up arenas that keep competing for the worker threads.
// Concurrent runs with the same concurrency share one arena (each waits on
// its own task_group). Never destroyed: worker threads may still be leaving
// an arena during static destruction.
//
// A request above what oneTBB allows (max_allowed_parallelism: the cores,
// or a tbb::global_control limit) gets the allowed number, and `clamped`
// says so in penstock's words (the run's warning), instead of oneTBB's
// "TBB Warning".
tbb::task_arena& arena_for(std::size_t threads, std::string* clamped) {
  static std::mutex mutex;
  static auto* arenas = new std::map<std::size_t, std::unique_ptr<tbb::task_arena>>;
  const std::scoped_lock lock(mutex);
  const std::size_t allowed = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  if (threads > allowed) {
    if (clamped != nullptr) {
      *clamped = fmt::format("run_options::threads = {} is more than the {} threads oneTBB allows here; using {}",
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

std::shared_ptr<const schedule> make_schedule(const graph_description& graph) {
  const std::size_t n = graph.nodes.size();
  auto plan = std::make_shared<schedule>();
  plan->inputs.assign(n, 0);
  plan->uses.assign(n, 0);
  plan->consumer_begin.assign(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& in : graph.nodes[i].inputs) {
      if (in.kind != input_kind::node) continue;
      ++plan->consumer_begin[in.index + 1];
      ++plan->inputs[i];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    plan->uses[i] = plan->consumer_begin[i + 1];
    plan->consumer_begin[i + 1] += plan->consumer_begin[i];
  }
  for (auto o : graph.outputs) ++plan->uses[o];  // outputs are kept for the caller
  plan->consumers.resize(plan->consumer_begin[n]);
  std::vector<std::uint32_t> fill(plan->consumer_begin.begin(), plan->consumer_begin.end() - 1);
  for (std::uint32_t i = 0; i < n; ++i) {
    for (const auto& in : graph.nodes[i].inputs)
      if (in.kind == input_kind::node) plan->consumers[fill[in.index]++] = i;
    if (plan->inputs[i] == 0) plan->sources.push_back(i);
  }
  plan->blank_reports.resize(n);
  for (std::size_t i = 0; i < n; ++i) plan->blank_reports[i].name = graph.nodes[i].name;
  return plan;
}

executor::executor(const graph_description& graph, const schedule& plan, run_state& state, const run_options& options,
                   run_observers& told, cache_session* cache, output_area* outputs)
    : graph_(graph),
      state_(state),
      cache_(cache),
      outputs_(outputs),
      gpu_(state.gpu.get()),
      gpu_async_(gpu_ != nullptr && gpu_->backend() == gpu_backend::cuda),
      stop_(options.stop != nullptr ? options.stop : &never_stop),
      told_(told),
      plan_(plan),
      nodes_(std::make_unique<node_state[]>(graph.nodes.size())),
      reports_(plan.blank_reports) {
  const std::size_t n = graph.nodes.size();
  // With the cache, an asynchronous GPU step's own completion is one more
  // use of its value: its consumers may not move it away before it is stored.
  const bool completion_uses = gpu_async_ && cache_ != nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    nodes_[i].pending.store(plan.inputs[i], std::memory_order_relaxed);
    nodes_[i].uses_left.store(plan.uses[i] + (completion_uses && on_gpu(i) ? 1 : 0), std::memory_order_relaxed);
  }
  if (gpu_async_) {
    gpu_finish_.resize(n);
    if (cache_ != nullptr) {
      twins_.emplace(graph.nodes);
      twin_made_ = std::make_unique<std::once_flag[]>(n);
    }
    wakeups_.resize(n);
    gpu_started_.resize(n);
    for (std::uint32_t i = 0; i < n; ++i) wakeups_[i] = {this, i};
  }
  if (std::any_of(graph.nodes.begin(), graph.nodes.end(), [](const auto& d) { return d.kind == node_kind::command; })) {
    command_runs_.resize(n);
    static const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());  // reads /sys: once
    most_processes_ = options.max_processes != 0 ? options.max_processes : cores;
  }
}

executor::~executor() {
  if (processes_) processes_->close();
}

process_supervisor& executor::processes() {
  std::call_once(processes_made_,
                 [this] { processes_ = std::make_shared<process_supervisor>(most_processes_, stop_, &told_); });
  return *processes_;
}

void executor::run(std::size_t threads) {
  std::string clamped;
  tbb::task_arena& arena = arena_for(threads, &clamped);
  if (!clamped.empty()) told_.warning(std::move(clamped));
  arena_ = &arena;
  // The sources start the run: once one runs, it counts its consumers down
  // to zero and starts them itself.
  run_started_ = step_clock::now();
  // The last source runs on this thread: a run with one source wakes no
  // worker until there is a second thing to do (a woken worker that finds
  // nothing spins for a while, on a core a step's process could use).
  arena.execute([&] {
    std::exception_ptr failed;  // as from a task: once the others are done
    if (!plan_.sources.empty()) {
      for (std::size_t k = 0; k + 1 < plan_.sources.size(); ++k) {
        const std::uint32_t i = plan_.sources[k];
        tasks_.run([this, i] { run_from(i); });
      }
      try {
        run_from(plan_.sources.back());
      } catch (...) {
        failed = std::current_exception();
      }
    }
    tasks_.wait();
    if (failed) std::rethrow_exception(failed);
  });
  // Pairs with the release in run_from: every report and output written by
  // a worker happens before the caller reads it.
  (void)finished_.load(std::memory_order_acquire);
  // Durations were counted in ticks: in nanoseconds at the run's tick rate.
  clock_.stop();
  for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
    reports_[i].duration = clock_.duration(nodes_[i].took);
    if (nodes_[i].worker < 0) continue;  // neither computed nor found in the cache
    reports_[i].worker = nodes_[i].worker;
    reports_[i].started = nodes_[i].started > run_started_ ? clock_.duration(nodes_[i].started - run_started_)
                                                           : std::chrono::nanoseconds{0};
  }
}

void executor::run_from(std::uint32_t i) {
  // One tick reading per step: the time a step ends is the time the next
  // one in this loop starts (the countdown between them takes nanoseconds).
  step_clock::ticks now = step_clock::now();
  // And one look-up of this thread's index: every step of the loop runs here.
  const int worker = tbb::this_task_arena::current_thread_index();
  for (;;) {
    const node_result result = run_node(i, now, worker);
    // Still running on the device: only GPU consumers start now.
    // A command still running: none.
    const std::uint32_t next = count_down(i, result.ok,
                                          !result.async                                ? consumers::all
                                          : graph_.nodes[i].kind == node_kind::command ? consumers::none
                                                                                       : consumers::gpu);
    if (next == none) break;
    i = next;
  }
  // The task's last act: pairs with the acquire after tasks_.wait().
  finished_.fetch_add(1, std::memory_order_release);
}

std::uint32_t executor::count_down(std::uint32_t i, bool ok, consumers which) {
  std::uint32_t next = none;
  if (which == consumers::none) return next;
  const std::uint32_t end = plan_.consumer_begin[i + 1];
  for (std::uint32_t c = plan_.consumer_begin[i]; c < end; ++c) {
    const std::uint32_t s = plan_.consumers[c];
    if (which != consumers::all && on_gpu(s) != (which == consumers::gpu)) continue;
    if (!ok) nodes_[s].input_failed.store(true, std::memory_order_relaxed);
    if (nodes_[s].pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (next != none) tasks_.run([this, next] { run_from(next); });
      next = s;
    }
  }
  return next;
}

executor::node_result executor::run_node(std::uint32_t i, step_clock::ticks& now, int worker) {
  // Acquire what every producer released when it counted this node down.
  // The thread that reached zero may have handed the node to this one
  // through oneTBB's queues; this load makes the edge explicit (and visible
  // to ThreadSanitizer, which cannot see inside an uninstrumented libtbb).
  (void)nodes_[i].pending.load(std::memory_order_acquire);
  const node_description& node = graph_.nodes[i];
  step_report& report = reports_[i];
  // After an interrupt nothing starts, and nothing is blamed on its inputs.
  if (stop_->load(std::memory_order_relaxed)) {
    report.status = step_status::not_run;
    finish_uncomputed(i, report);
    return {};
  }
  if (nodes_[i].input_failed.load(std::memory_order_relaxed)) {
    report.status = step_status::skipped;
    finish_uncomputed(i, report);
    return {};
  }
  if (cache_ != nullptr) {
    if (cache_->lookup(i, report) || cache_->begin_miss(i, report)) {
      // Found: when and where, for the record and the trace (it took no time).
      now = step_clock::now();
      nodes_[i].started = now;
      nodes_[i].worker = worker;
      finish_uncomputed(i, report);
      return {.ok = report.status == step_status::succeeded};
    }
    // Inputs that were cache hits are read from the store now.
    for (const auto& in : node.inputs) {
      if (in.kind == input_kind::node && !materialize(in.index)) {
        report.status = step_status::failed;
        report.error = fmt::format("its input from step '{}' could not be read from the cache nor recomputed",
                                   graph_.nodes[in.index].name);
        cache_->abandon(i);
        begin_step(i, step_clock::now(), worker);
        finish_uncomputed(i, report);
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
                         nodes_[in.index].uses_left.load(std::memory_order_acquire) == 1 && !read_again(in.index);
  }
  fill_inputs(node, inputs);

  // A map's elements are cached one by one; nothing to set up otherwise
  // (not even an empty hook: zeroing one costs more than the rest of an
  // empty step's bookkeeping).
  std::unique_ptr<element_cache_hook> elements;
  if (cache_ != nullptr && node.kind == node_kind::map) {
    elements = std::make_unique<element_cache_hook>();
    if (!cache_->element_hook(i, *elements)) elements.reset();
  }
  const bool per_element = elements != nullptr;
  if (cache_ != nullptr) now = step_clock::now();  // not counting the cache lookup and the inputs' loading
  const auto start = now;
  begin_step(i, start, worker);
  CUstream_st* stream = nullptr;  // stays null on the host backend
  if (gpu_async_ && on_gpu(i) && !begin_gpu_step(i, stream, report, &inputs)) {
    if (cache_ != nullptr) cache_->abandon(i);
    finish_uncomputed(i, report);
    return {};
  }
  if (node.kind == node_kind::command) return start_command(i, start, inputs, report);
  {
    // A CPU step reads GPU values whose work is done: copied on their own stream.
    const completed_copies scope(gpu_async_ && !on_gpu(i) ? gpu_ : nullptr);
    attempt(node, inputs, state_.node_slots[i], report, elements.get(), stream);
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
  now = step_clock::now();
  finish_step(i, report, start, now, nullptr);
  return {.ok = report.status == step_status::succeeded};
}

void executor::finish_step(std::uint32_t i, step_report& report, step_clock::ticks start, step_clock::ticks end,
                           gpu_runtime* completed) {
  nodes_[i].took = end > start ? end - start : 0;  // 0 if read on a core whose counter is behind
  if (cache_ != nullptr) {
    if (report.status == step_status::succeeded) {
      const completed_copies scope(completed);
      cache_->store(i, report);
    } else {
      cache_->abandon(i);
    }
  }
  if (told_.steps()) told_.step_finished(i, report, clock_.duration(nodes_[i].took));
  release_inputs(graph_.nodes[i]);
}

void executor::finish_uncomputed(std::uint32_t i, const step_report& report) {
  if (told_.steps()) told_.step_finished(i, report, {});
  release_inputs(graph_.nodes[i]);
}

void executor::begin_step(std::uint32_t i, step_clock::ticks start, int worker) {
  nodes_[i].started = start;
  nodes_[i].worker = worker;
  if (told_.steps()) told_.step_started(i, nodes_[i].worker);
}

void executor::fill_inputs(const node_description& node, input_list& inputs) const {
  for (std::size_t j = 0; j < node.inputs.size(); ++j) {
    const auto& in = node.inputs[j];
    switch (in.kind) {
      case input_kind::node: inputs.slots[j] = state_.node_slots[in.index]; break;
      case input_kind::param: inputs.slots[j] = state_.param_slots[in.index]; break;
      case input_kind::constant: inputs.slots[j] = nullptr; break;
    }
  }
}

void executor::release_inputs(const node_description& node) {
  for (const auto& in : node.inputs)
    if (in.kind == input_kind::node) release_value(in.index);
}

void executor::release_value(std::uint32_t p) {
  if (nodes_[p].uses_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (cache_ == nullptr) {
    graph_.nodes[p].slot.clear(state_.node_slots[p]);
    return;
  }
  // A recomputation may have pinned the value since the count reached
  // zero: clear it only if it is still unused, under the lock that
  // materialize() holds while it checks and fills the slot.
  cache_->release_if_unused(p, nodes_[p].uses_left, state_.node_slots[p]);
}

}  // namespace penstock::detail::r1
