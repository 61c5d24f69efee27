// The executor: runs a lowered graph on oneTBB. A step starts as soon as its
// last input is ready (a per-node countdown, no level barriers). The task that
// finishes a step runs one ready successor itself and spawns the rest, so a
// chain costs no task spawns at all. A value is moved into its last consumer
// and released as soon as no consumer needs it.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <penstock/detail/runtime_api.hpp>

#include "progress.hpp"
#include "run_state.hpp"

namespace penstock {

std::string run_report::summary() const {
  std::string out = fmt::format("pipeline '{}': {} succeeded", pipeline, count(step_status::succeeded));
  for (auto s : {step_status::failed, step_status::timed_out, step_status::skipped, step_status::cancelled,
                 step_status::not_run}) {
    if (const auto n = count(s); n != 0) out += fmt::format(", {} {}", n, to_string(s));
  }
  out += fmt::format(" in {:.3f} s", std::chrono::duration<double>(wall).count());
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

class executor {
 public:
  executor(const graph_description& graph, run_state& state, const run_options& options, progress& shown)
      : graph_(graph),
        state_(state),
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
    tbb::task_arena arena(threads == 0 ? tbb::task_arena::automatic : static_cast<int>(threads));
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
    for (;;) {
      run_node(i);
      std::uint32_t next = none;
      const bool ok = reports_[i].status == step_status::succeeded;
      for (std::uint32_t c = consumer_begin_[i]; c < real_consumer_end_[i]; ++c) {
        const std::uint32_t s = consumers_[c];
        if (!ok) input_failed_[s].store(true, std::memory_order_relaxed);
        if (pending_[s].fetch_sub(1, std::memory_order_acq_rel) == 1) {
          if (next != none) tasks_.run([this, next] { run_from(next); });
          next = s;
        }
      }
      if (next == none) break;
      i = next;
    }
    // The task's last act: pairs with the acquire after tasks_.wait().
    finished_.fetch_add(1, std::memory_order_release);
  }

  void run_node(std::uint32_t i) {
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
      return;
    }
    if (input_failed_[i].load(std::memory_order_relaxed)) {
      report.status = step_status::skipped;
      release_inputs(node);
      return;
    }

    constexpr std::size_t inline_inputs = 8;
    void* input_buffer[inline_inputs];
    bool move_buffer[inline_inputs];
    std::unique_ptr<void*[]> input_heap;
    std::unique_ptr<bool[]> move_heap;
    void** inputs = input_buffer;
    bool* may_move = move_buffer;
    if (node.inputs.size() > inline_inputs) {
      input_heap = std::make_unique<void*[]>(node.inputs.size());
      move_heap = std::make_unique<bool[]>(node.inputs.size());
      inputs = input_heap.get();
      may_move = move_heap.get();
    }
    const std::uint32_t retries = node.kind == node_kind::map ? 0 : node.options.retries;
    for (std::size_t j = 0; j < node.inputs.size(); ++j) {
      const auto& in = node.inputs[j];
      switch (in.kind) {
        case input_kind::node:
          inputs[j] = state_.node_slots[in.index];
          // Every other consumer has finished: nobody else will read it.
          may_move[j] = node.options.retries == 0 && uses_left_[in.index].load(std::memory_order_acquire) == 1;
          break;
        case input_kind::param:
          inputs[j] = state_.param_slots[in.index];
          may_move[j] = false;
          break;
        case input_kind::constant:
          inputs[j] = nullptr;
          may_move[j] = false;
          break;
      }
    }

    shown_.started();
    const auto start = clock::now();
    void* output = state_.node_slots[i];
    for (;;) {
      ++report.attempts;
      const auto deadline =
          node.options.timeout.count() > 0 ? clock::now() + node.options.timeout : clock::time_point::max();
      context ctx(node.name, stop_, deadline, &shown_);
      try {
        node.run(node.step, inputs, may_move, output, ctx);
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
    report.duration = clock::now() - start;
    shown_.finished(node.name, report.status, report.duration);
    release_inputs(node);
  }

  static std::string timeout_message(const node_description& node) {
    return fmt::format("exceeded its timeout of {:.3f} s", std::chrono::duration<double>(node.options.timeout).count());
  }

  // Drops each input's value once its last consumer is done with it.
  void release_inputs(const node_description& node) {
    for (const auto& in : node.inputs) {
      if (in.kind != input_kind::node) continue;
      if (uses_left_[in.index].fetch_sub(1, std::memory_order_acq_rel) == 1) {
        graph_.nodes[in.index].slot.clear(state_.node_slots[in.index]);
      }
    }
  }

  static constexpr std::uint32_t none = static_cast<std::uint32_t>(-1);

  const graph_description& graph_;
  run_state& state_;
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
  auto state = std::make_shared<run_state>(graph);
  resolve_params(graph, *state, options);

  const auto start = clock::now();
  progress shown(graph.name, graph.nodes.size(), options.progress, stderr);
  executor exec(graph, *state, options, shown);
  exec.run(options.threads);
  shown.close();

  run_outcome outcome{std::move(state), {}};
  outcome.report.pipeline = graph.name;
  outcome.report.steps = exec.take_reports();
  outcome.report.wall = clock::now() - start;
  outcome.report.interrupted = options.stop != nullptr && options.stop->load();
  // A value that was released after its last consumer is not handed out:
  // output_slot() must return null for it, not an empty optional.
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    outcome.state->succeeded[i] = outcome.report.steps[i].status == step_status::succeeded &&
                                  graph.nodes[i].slot.has_value(outcome.state->node_slots[i]);
  return outcome;
}

const void* output_slot(const run_state& state, std::size_t index) noexcept {
  if (index >= state.node_slots.size() || !state.succeeded[index]) return nullptr;
  return state.node_slots[index];
}

void for_each_element(const context& node_ctx, std::size_t n, std::uint32_t retries,
                      void (*element_fn)(void* data, std::size_t i, context& element_ctx), void* data) {
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n), [&](const tbb::blocked_range<std::size_t>& range) {
    for (std::size_t i = range.begin(); i != range.end(); ++i) {
      context ctx = node_ctx.for_element(i);
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
    }
  });
}

}  // namespace detail::r1
}  // namespace penstock
