// GPU completion: GPU steps on CUDA are asynchronous. Once a GPU step's work
// is enqueued, its GPU consumers start at once (they wait for it on the
// device); its CPU consumers, its cache entry and the release of its inputs
// wait for a host callback saying the work is done (gpu_runtime.hpp).
#include <exception>
#include <mutex>
#include <vector>

#include "cache_session.hpp"
#include "executor.hpp"
#include "gpu_runtime.hpp"

namespace penstock::detail::r1 {

executor::node_result executor::enqueue_finish(std::uint32_t i, step_clock::ticks start, step_report& report,
                                               step_clock::ticks& now) {
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
  now = step_clock::now();
  return result;
}

bool executor::wait_for_gpu_step(std::uint32_t i) {
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

bool executor::begin_gpu_step(std::uint32_t i, CUstream_st*& stream, step_report& report, input_list* inputs) {
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
void* executor::device_twin(std::uint32_t p, CUstream_st* stream) {
  const slot_functions& f = graph_.nodes[p].slot;
  void* twin = (*twins_)[p];
  std::call_once(twin_made_[p], [&] {
    if (f.upload(state_.node_slots[p], twin, gpu_->memory(), stream)) gpu_->mark_ready(p, stream);
  });
  if (!f.has_value(twin)) return state_.node_slots[p];
  gpu_->wait_for(p, stream);
  return twin;
}

// Called on a CUDA thread once GPU step w->node's work is done: hands its
// completion to the arena (no CUDA call here, as CUDA requires).
void executor::wake(void* data) {
  auto* w = static_cast<wakeup*>(data);
  w->self->arena_->enqueue(std::move(*w->self->gpu_finish_[w->node]));
}

// The part of an asynchronous GPU step that needs its work done: errors
// the device reported, its cache entry (the value is copied to the host
// here, off the path of the GPU steps after it), the release of its inputs,
// and its CPU consumers.
void executor::finish_gpu(std::uint32_t i) {
  step_report& report = reports_[i];
  if (report.status == step_status::succeeded) {
    try {
      gpu_->check_step(i);
    } catch (const std::exception& e) {
      report.status = step_status::failed;
      report.error = e.what();
    }
  }
  // Ends on another thread than it started; its work is done, so the cache
  // copies its value from the device without waiting.
  finish_step(i, report, gpu_started_[i], step_clock::now(), gpu_);
  if (cache_ != nullptr) release_value(i);
  // Its GPU consumers started when it was enqueued; this task goes on with
  // a CPU one.
  const std::uint32_t next = count_down(i, report.status == step_status::succeeded, consumers::cpu);
  finished_.fetch_add(1, std::memory_order_release);
  if (next != none) run_from(next);
}

}  // namespace penstock::detail::r1
