// run_state: the value slots of one run (one per node, one per parameter).
// Private to the runtime; the headers see it only as an opaque handle.
#pragma once

#include <cstddef>
#include <vector>

#include <penstock/detail/runtime_api.hpp>
#include <penstock/graph_description.hpp>

namespace penstock::detail::r1 {

class run_state {
 public:
  explicit run_state(const graph_description& graph) : graph_(graph) {
    node_slots.reserve(graph.nodes.size());
    for (const auto& n : graph.nodes) node_slots.push_back(n.slot.create());
    param_slots.reserve(graph.params.size());
    for (const auto& p : graph.params) param_slots.push_back(p.slot.create());
    succeeded.assign(graph.nodes.size(), false);
  }
  run_state(const run_state&) = delete;
  run_state& operator=(const run_state&) = delete;
  ~run_state() {
    for (std::size_t i = 0; i < node_slots.size(); ++i) graph_.nodes[i].slot.destroy(node_slots[i]);
    for (std::size_t i = 0; i < param_slots.size(); ++i) graph_.params[i].slot.destroy(param_slots[i]);
  }

  std::vector<void*> node_slots;
  std::vector<void*> param_slots;
  std::vector<bool> succeeded;  // written after the run, by one thread

 private:
  const graph_description& graph_;
};

}  // namespace penstock::detail::r1
