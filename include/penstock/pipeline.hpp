// ps::pipeline<"name">(outputs...): every step the outputs depend on, each
// once, in topological order. Constructing it lowers the typed steps to the
// runtime's graph_description (description()), and run() executes it.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/detail/runtime_api.hpp>
#include <penstock/detail/step_base.hpp>
#include <penstock/error.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/node.hpp>
#include <penstock/run_report.hpp>

namespace penstock {

// The values and report of one run. Holds the pipeline's outputs; other
// values are released as soon as their last consumer has run.
class run_result {
 public:
  run_result(detail::r1::run_outcome outcome, const graph_description& graph, std::shared_ptr<const void> keep_alive)
      : keep_alive_(std::move(keep_alive)), outcome_(std::move(outcome)), graph_(&graph) {}

  [[nodiscard]] const run_report& report() const noexcept { return outcome_.report; }
  [[nodiscard]] bool ok() const noexcept { return outcome_.report.ok(); }

  // The value of an output node. Throws std::logic_error naming the step if
  // it has none (the step failed, or the node is not an output).
  template <class T, class G, class P>
  [[nodiscard]] const T& value(const node<T, G, P>&) const {
    using producer = typename node<T, G, P>::producer_type;
    constexpr std::string_view name = producer::step_name.view();
    const void* slot = nullptr;
    for (std::size_t i = 0; i < graph_->nodes.size(); ++i)
      if (graph_->nodes[i].name == name) slot = detail::r1::output_slot(*outcome_.state, i);
    if (slot == nullptr) {
      throw std::logic_error(std::string("step '").append(name).append(
          "' has no value in this run: it did not succeed, or it is not an output of the pipeline"));
    }
    const auto& whole = **static_cast<const std::optional<typename producer::output_type>*>(slot);
    return P::apply(whole);
  }

 private:
  // Declared first so it is destroyed last: the run state's destructor reads
  // the graph description that keep_alive_ owns.
  std::shared_ptr<const void> keep_alive_;
  detail::r1::run_outcome outcome_;
  const graph_description* graph_;
};

// A pipeline: the steps its outputs depend on, lowered once, when it is
// built, to the flat description the runtime runs (shared by its copies).
template <fixed_string Name>
class typed_pipeline {
 public:
  static constexpr auto name = Name;

  // Throws std::invalid_argument (before any step runs) when two different
  // steps have one name, naming both definitions by file and line, or when
  // a parameter is declared with two types.
  explicit typed_pipeline(std::vector<std::shared_ptr<const detail::step_base>> outputs)
      : lowered_(detail::r1::lower(Name.view(), std::move(outputs))) {}

  // Every step, once, in topological order (each after its inputs, the
  // first output's upstream first), its inputs, parameters and outputs.
  [[nodiscard]] const graph_description& description() const noexcept { return detail::r1::description(*lowered_); }

  [[nodiscard]] run_result run(const run_options& options = {}) const {
    return run_result(detail::r1::execute(description(), options, &detail::r1::schedule_of(*lowered_)), description(),
                      lowered_);
  }

 private:
  std::shared_ptr<const detail::r1::lowered_pipeline> lowered_;
};

// Returns once every run of this process that has ended is in its
// workspace: what runs with tracking_options::write_behind left to the
// record writer is written (at once when there is nothing left).
inline void wait_for_records() { detail::r1::wait_for_records(); }

// What ps::pipeline returns when an output is an error_node: the error has
// been reported; this only keeps the rest of the program from adding more.
template <fixed_string Name>
struct error_pipeline {};

template <fixed_string Name, class... Outputs>
[[nodiscard]] auto pipeline(const Outputs&... outputs) {
  static_assert(sizeof...(Outputs) > 0, "ps::pipeline needs at least one output node");
  if constexpr ((std::is_same_v<Outputs, error_node> || ...)) {
    return error_pipeline<Name>{};
  } else {
    return typed_pipeline<Name>(std::vector<std::shared_ptr<const detail::step_base>>{outputs.producer()...});
  }
}

}  // namespace penstock
