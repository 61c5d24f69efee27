// run_state: the value slots of one run (one per node, one per parameter).
// Private to the runtime; the headers see it only as an opaque handle.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include <penstock/detail/runtime_api.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/run_report.hpp>

#include "gpu_runtime.hpp"

namespace penstock::detail::r1 {

// Value slots in one aligned block: constructed empty, destroyed with the
// block. One allocation per run instead of one per node.
class slot_block {
 public:
  slot_block() = default;
  template <class Range>  // of slot_functions, or of anything with a .slot member
  explicit slot_block(const Range& items) {
    offsets_.reserve(std::size(items));
    functions_.reserve(std::size(items));
    std::size_t offset = 0;
    for (const auto& item : items) {
      const slot_functions& f = functions_of(item);
      align_ = std::max(align_, f.align);
      offset = (offset + f.align - 1) / f.align * f.align;
      offsets_.push_back(offset);
      functions_.push_back(&f);
      offset += f.size;
    }
    storage_ = static_cast<std::byte*>(::operator new (std::max<std::size_t>(offset, 1), std::align_val_t{align_}));
    for (std::size_t i = 0; i < functions_.size(); ++i) functions_[i]->construct(storage_ + offsets_[i]);
  }
  slot_block(const slot_block&) = delete;
  slot_block& operator=(const slot_block&) = delete;
  ~slot_block() {
    if (storage_ == nullptr) return;
    for (std::size_t i = 0; i < functions_.size(); ++i) functions_[i]->destroy(storage_ + offsets_[i]);
    ::operator delete (storage_, std::align_val_t{align_});
  }
  [[nodiscard]] void* operator[](std::size_t i) const noexcept { return storage_ + offsets_[i]; }
  [[nodiscard]] std::size_t size() const noexcept { return offsets_.size(); }

 private:
  static const slot_functions& functions_of(const slot_functions& f) { return f; }
  template <class T>
  static const slot_functions& functions_of(const T& item) {
    return item.slot;
  }

  std::vector<std::size_t> offsets_;
  std::vector<const slot_functions*> functions_;
  std::size_t align_ = alignof(std::max_align_t);
  std::byte* storage_ = nullptr;
};

class run_state {
 public:
  // The GPU backend, when the graph has GPU steps. Made before the slots and
  // destroyed after them: device values are freed on its streams.
  explicit run_state(const graph_description& graph, std::unique_ptr<gpu_runtime> gpu_backend = {})
      : gpu(std::move(gpu_backend)), nodes_(graph.nodes), params_(graph.params) {
    node_slots.reserve(graph.nodes.size());
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) node_slots.push_back(nodes_[i]);
    param_slots.reserve(graph.params.size());
    for (std::size_t i = 0; i < graph.params.size(); ++i) param_slots.push_back(params_[i]);
    succeeded.assign(graph.nodes.size(), false);
  }
  run_state(const run_state&) = delete;
  run_state& operator=(const run_state&) = delete;

  std::unique_ptr<gpu_runtime> gpu;

 private:
  slot_block nodes_;
  slot_block params_;

 public:
  std::vector<void*> node_slots;
  std::vector<void*> param_slots;
  std::vector<bool> succeeded;  // written after the run, by one thread
};

// Sets every parameter's slot: its default, then run_options::params parsed
// by its type. Throws param_error naming the parameter when one is unknown,
// malformed or has no value.
void resolve_params(const graph_description& graph, run_state& state, const run_options& options);

}  // namespace penstock::detail::r1
