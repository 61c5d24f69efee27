// Attempts: one step's run with its retries and time-out, the check of the
// files it returns, and a step run again outside the schedule (recompute) when
// a cached value it fed turns out unreadable.
#include <chrono>
#include <exception>
#include <optional>
#include <string>

#include <fmt/format.h>

#include <penstock/gpu_context.hpp>

#include "cache_session.hpp"
#include "cache_store.hpp"
#include "executor.hpp"
#include "file_values.hpp"
#include "gpu_runtime.hpp"

namespace penstock::detail::r1 {

namespace {

std::string timeout_message(const node_description& node) {
  return fmt::format("exceeded its timeout of {:.3f} s", std::chrono::duration<double>(node.options.timeout).count());
}

}  // namespace

void executor::attempt(const node_description& node, input_list& inputs, void* output, step_report& report,
                       element_cache_hook* elements, CUstream_st* stream) {
  if (node.kind == node_kind::command) {
    attempt_command(node, inputs, output, report);
    return;
  }
  const std::uint32_t retries = node.kind == node_kind::map ? 0 : node.options.retries;
  for (;;) {
    ++report.attempts;
    const auto deadline =
        node.options.timeout.count() > 0 ? clock::now() + node.options.timeout : clock::time_point::max();
    context ctx(node.name, stop_, deadline, &told_, context::npos, elements);
    ctx.attach_outputs(outputs_);
    std::optional<gpu_context> gpu;
    if (gpu_ != nullptr && node.options.where == placement::gpu) {
      ctx.attach_gpu(&gpu.emplace(ctx, gpu_->backend(), gpu_->device(), stream, gpu_->memory(), gpu_->why_no_device()));
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
    if (told_.steps())
      told_.step_retried(static_cast<std::uint32_t>(&node - graph_.nodes.data()), report.attempts, report.error);
  }
}

bool executor::materialize(std::uint32_t p) {
  return cache_->materialize(p, [this](std::uint32_t q) { return recompute(q); });
}

bool executor::read_again(std::uint32_t p) const {
  if (cache_ == nullptr) return false;
  for (std::uint32_t c = plan_.consumer_begin[p]; c < plan_.consumer_begin[p + 1]; ++c)
    if (cache_->lazy(plan_.consumers[c])) return true;
  return false;
}

// Its inputs are pinned and materialized first (recursively), so that their
// other consumers cannot free them while q reads them.
bool executor::recompute(std::uint32_t q) {
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

void executor::check_files(const node_description& node, void* output) const {
  if (node.slot.path_value == nullptr) return;
  for (std::size_t k = 0; k < node.slot.path_value_count; ++k) {
    path_value* value = node.slot.path_value(output, k);
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
}

}  // namespace penstock::detail::r1
