// hand_lowered_graph: a penstock::graph_description written by hand, node by
// node, for shapes too big to spell through the DSL in reasonable compile
// time (see RESULTS.md). Every node is an int-valued step; its run function
// does what the DSL's lowered step_instance::run does for such a step: read
// each input's std::optional<int> slot, call the callable, emplace the result.
// The runtime (r1::execute) cannot tell the two apart.
#pragma once

#include <penstock/detail/runtime_api.hpp>
#include <penstock/detail/slot.hpp>
#include <penstock/graph_description.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace penstock_bench {

// "c17": a node name made at run time, the hand-lowered twin of indexed_name.
// (Appends rather than "c" + std::to_string(i), which g++ 12 -O2 flags with a
// false -Wrestrict.)
inline std::string runtime_name(char prefix, std::size_t index) {
  std::string name(1, prefix);
  name.append(std::to_string(index));
  return name;
}

template <class F, std::size_t Arity>
void run_int_step(const void* step, void* const* inputs, const bool*, void* output, penstock::context&) {
  const F& fn = *static_cast<const F*>(step);
  auto& out = *static_cast<std::optional<int>*>(output);
  [&]<std::size_t... J>(std::index_sequence<J...>) {
    out.emplace(fn(**static_cast<std::optional<int>*>(inputs[J])...));
  }
  (std::make_index_sequence<Arity>{});
}

class hand_lowered_graph {
 public:
  explicit hand_lowered_graph(std::string name) : name_(std::move(name)) {}
  hand_lowered_graph(const hand_lowered_graph&) = delete;
  hand_lowered_graph& operator=(const hand_lowered_graph&) = delete;

  // Appends a node that runs `fn` (which must outlive the graph) on the
  // values of `producers`, earlier nodes, and returns its index. Nodes must
  // be added in topological order.
  template <std::size_t Arity, class F>
  std::uint32_t add(std::string name, const F& fn, const std::array<std::uint32_t, Arity>& producers) {
    names_.push_back(std::move(name));
    first_input_.push_back(inputs_.size());
    for (auto p : producers)
      inputs_.push_back({.kind = penstock::input_kind::node, .index = p, .type = "int", .projection = {}});
    nodes_.push_back({.name = names_.back(),
                      .kind = penstock::node_kind::step,
                      .output_type = "int",
                      .inputs = {},  // set by description(), once inputs_ stops growing
                      .options = {},
                      .identity = {},
                      .cacheable = false,
                      .step = &fn,
                      .run = &run_int_step<F, Arity>,
                      .slot = penstock::detail::slot_functions_for<int>()});
    return static_cast<std::uint32_t>(nodes_.size() - 1);
  }

  void mark_output(std::uint32_t node) { outputs_.push_back(node); }

  // The description, valid while this object lives and no node is added.
  [[nodiscard]] const penstock::graph_description& description() {
    first_input_.push_back(inputs_.size());
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      nodes_[i].inputs = std::span<const penstock::input_description>(inputs_).subspan(
          first_input_[i], first_input_[i + 1] - first_input_[i]);
    first_input_.pop_back();
    description_ = {.name = name_, .nodes = nodes_, .params = {}, .outputs = outputs_};
    return description_;
  }

 private:
  std::string name_;
  std::deque<std::string> names_;  // a deque: node names point into it
  std::vector<std::size_t> first_input_;
  std::vector<penstock::input_description> inputs_;
  std::vector<penstock::node_description> nodes_;
  std::vector<std::uint32_t> outputs_;
  penstock::graph_description description_;
};

}  // namespace penstock_bench
