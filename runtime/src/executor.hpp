// executor: one run of a lowered graph on oneTBB, its state and its parts.
// Private to the runtime; its member functions live in the files named for
// their job: scheduling.cpp (the countdown, run_node, values' release),
// attempts.cpp (retries, time-outs, recomputation), gpu_completion.cpp
// (asynchronous GPU steps on CUDA); execute.cpp makes one per run.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <penstock/detail/runtime_api.hpp>

#include "cache_session.hpp"
#include "command_steps.hpp"
#include "gpu_runtime.hpp"
#include "run_observers.hpp"
#include "run_state.hpp"
#include "step_clock.hpp"

namespace penstock::detail::r1 {

using clock = std::chrono::steady_clock;

// What the executor derives from a graph before it runs it, once per
// pipeline (make_schedule, scheduling.cpp): node i's consumers are
// consumers[consumer_begin[i] .. consumer_begin[i + 1]) (a node reading one
// producer twice is listed twice); inputs[i] counts its inputs from other
// nodes (its countdown's start); uses[i] its consumers plus each time it is
// one of the pipeline's outputs; sources are the nodes with no node inputs.
// blank_reports: a run's reports before it starts, names filled in (copied
// per run: a copy costs a third of building them afresh, bench/RESULTS.md).
struct schedule {
  std::vector<std::uint32_t> consumer_begin;
  std::vector<std::uint32_t> consumers;
  std::vector<std::uint32_t> inputs;
  std::vector<std::uint32_t> uses;
  std::vector<std::uint32_t> sources;
  std::vector<step_report> blank_reports;
  // The graph's structural digest, made when a recorded run first asks (structure_of, run_recorder.hpp).
  mutable std::once_flag structure_once;
  mutable digest structure;
};

// The arena every run with `threads` threads runs in (0: one per core),
// made on first use and kept; a request above what oneTBB allows gets the
// allowed number, and `clamped` (if not null) a sentence saying so (scheduling.cpp).
tbb::task_arena& arena_for(std::size_t threads, std::string* clamped = nullptr);

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

class executor {
 public:
  // `told`: the run's observers, told of each step's start and end (none
  // attached: nothing is called), and the sink of the steps' logs.
  executor(const graph_description& graph, const schedule& plan, run_state& state, const run_options& options,
           run_observers& told, cache_session* cache, output_area* outputs);
  // Closes the commands' supervisor (ending what still runs, after an error).
  ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  // Runs every node once (or finds it cached), on `threads` threads.
  void run(std::size_t threads);

  std::vector<step_report> take_reports() { return std::move(reports_); }

  // Gives node p's slot its value if it was a lazily loaded cache hit (or
  // recomputes p when its blob is bad). Used for inputs and for outputs.
  bool materialize(std::uint32_t p);

 private:
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

  enum class consumers : std::uint8_t { all, gpu, cpu, none };

  struct node_result {
    bool ok = false;     // succeeded (so far, for an asynchronous GPU step)
    bool async = false;  // a GPU step still running on the device (finish_gpu() completes it), or a
                         // command whose process runs (finish_command())
  };

  // What the host callback of an asynchronous GPU step is given.
  struct wakeup {
    executor* self = nullptr;
    std::uint32_t node = 0;
  };

  static constexpr std::uint32_t none = static_cast<std::uint32_t>(-1);

  // --- scheduling.cpp ---
  // Runs node `i`, then keeps going with one successor it made ready.
  void run_from(std::uint32_t i);
  // Counts node i's consumers of the kind `which` down (marking their input
  // failed unless `ok`); spawns those it made ready but one, which it returns
  // for the calling task to run (or `none`).
  std::uint32_t count_down(std::uint32_t i, bool ok, consumers which);
  // `now`: when the node starts; set to when it ended. `worker`: this
  // thread's index in the arena.
  node_result run_node(std::uint32_t i, step_clock::ticks& now, int worker);
  // The end of step i's run (on the host, or on the device once its work is
  // done): its time, its cache entry (stored, with `completed`'s values
  // copied as completed, or abandoned), the observers' step_finished, its inputs' release.
  void finish_step(std::uint32_t i, step_report& report, step_clock::ticks start, step_clock::ticks end,
                   gpu_runtime* completed);
  // A step that did not compute (cached, skipped, not run): its observers
  // told, its inputs released.
  void finish_uncomputed(std::uint32_t i, const step_report& report);
  // Step i starts computing at `start` on this thread (`worker`).
  void begin_step(std::uint32_t i, step_clock::ticks start, int worker);
  void fill_inputs(const node_description& node, input_list& inputs) const;
  // Drops each input's value once its last consumer is done with it.
  void release_inputs(const node_description& node);
  void release_value(std::uint32_t p);
  [[nodiscard]] bool on_gpu(std::size_t i) const noexcept { return graph_.nodes[i].options.where == placement::gpu; }

  // --- attempts.cpp ---
  // Runs the step with its retries and time-out; sets status, attempts, error.
  void attempt(const node_description& node, input_list& inputs, void* output, step_report& report,
               element_cache_hook* elements = nullptr, CUstream_st* stream = nullptr);
  // A step that returns a ps::file or ps::directory: it must be there and
  // readable; with the cache, it is hashed now (its stat recorded).
  void check_files(const node_description& node, void* output) const;
  // Whether a lazily cached consumer of node p may still recompute itself
  // from p's value (with the cache only).
  [[nodiscard]] bool read_again(std::uint32_t p) const;
  // Keeps node p's value alive while a recomputation reads it: one more use,
  // taken even after the count reached zero (the value is then gone or
  // going, and materialize() computes it again).
  void pin(std::uint32_t p) { nodes_[p].uses_left.fetch_add(1, std::memory_order_acq_rel); }
  // Runs node q again outside the schedule, for a cached value that could
  // not be read.
  bool recompute(std::uint32_t q);

  // --- gpu_completion.cpp ---
  // A GPU step on CUDA whose work is enqueued: the rest happens in
  // finish_gpu, once the device is done.
  node_result enqueue_finish(std::uint32_t i, step_clock::ticks start, step_report& report, step_clock::ticks& now);
  // Makes the host wait for GPU step i's work, outside the schedule. False
  // when the device reports an error.
  bool wait_for_gpu_step(std::uint32_t i);
  // On CUDA: the stream of GPU step `i`, ordered after its GPU inputs. False,
  // the report saying why, when CUDA refuses. With `inputs`, a cache hit it
  // reads is given to it as its device twin.
  bool begin_gpu_step(std::uint32_t i, CUstream_st*& stream, step_report& report, input_list* inputs = nullptr);
  // A cache hit's device copy, uploaded once by its first GPU reader.
  void* device_twin(std::uint32_t p, CUstream_st* stream);
  // Called on a CUDA thread once a GPU step's work is done.
  static void wake(void* data);
  // The part of an asynchronous GPU step that needs its work done.
  void finish_gpu(std::uint32_t i);

  // --- command_steps.cpp ---
  // Starts command step i's first attempt; the rest happens in
  // finish_command. Returns a failed result at once when the command cannot
  // be prepared (an input that cannot be named, its program not found).
  node_result start_command(std::uint32_t i, step_clock::ticks start, const input_list& inputs, step_report& report);
  // The part of a command step that needs its process done: its value, the
  // check of its files, its cache entry, its consumers.
  void finish_command(std::uint32_t i);
  // A command run outside the schedule (recompute), waiting for it here.
  void attempt_command(const node_description& node, const input_list& inputs, void* output, step_report& report);
  // The report of a command that ended (`run`), and on success its value
  // in `output`, its files checked (and hashed, with the cache).
  void conclude_command(const node_description& node, const command_run& run, void* output, step_report& report) const;
  // Fills `run` from the inputs; false, `run.error` saying why, if it cannot.
  bool prepare_command(const node_description& node, const input_list& inputs, command_run& run) const;
  // The next attempt's request, in a fresh directory (throws file_error).
  process_request next_attempt(const node_description& node, command_run& run) const;
  // Judges an ended attempt: true when the command is done (succeeded, or
  // failed for good), false when it was submitted again.
  bool judge_attempt(const node_description& node, command_run& run, const process_outcome& outcome, bool may_retry);

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
  std::vector<step_clock::ticks> gpu_started_;
  // With the cache: device twins of cache hits, a slot per node, each made once.
  std::optional<slot_block> twins_;
  std::unique_ptr<std::once_flag[]> twin_made_;
  const std::atomic<bool>* stop_;
  run_observers& told_;
  // Per node, for this run: its countdown to start, the uses of its value
  // still to come, whether an input failed, when it started and how long it
  // took (ticks), and the worker that ran it.
  struct node_state {
    std::atomic<std::uint32_t> pending{0};
    std::atomic<std::uint32_t> uses_left{0};
    std::atomic<bool> input_failed{false};
    int worker = -1;
    step_clock::ticks started = 0;
    step_clock::ticks took = 0;
  };
  const schedule& plan_;
  std::unique_ptr<node_state[]> nodes_;
  step_clock clock_;
  step_clock::ticks run_started_ = 0;
  std::vector<step_report> reports_;
  std::atomic<std::size_t> finished_{0};
  tbb::task_group tasks_;
  // Command steps: their runs (one per node, made when it starts) and the
  // run's process supervisor, last so that it is destroyed (its thread
  // joined) first. The supervisor (a thread and an eventfd) is made when
  // the first command starts: a rerun whose commands all hit the cache
  // starts none.
  std::vector<std::unique_ptr<command_run>> command_runs_;
  std::size_t most_processes_ = 0;
  std::once_flag processes_made_;
  std::shared_ptr<process_supervisor> processes_;
  process_supervisor& processes();
};

}  // namespace penstock::detail::r1
