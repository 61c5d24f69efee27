// ps::pipeline<"name">(outputs...): every step the outputs depend on, each
// once, in a compile-time topological order. Its structure is constexpr
// (node_count, step_names, edges); constructing it lowers the typed steps to
// the runtime's graph_description, and run() executes it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <penstock/detail/graph_list.hpp>
#include <penstock/detail/runtime_api.hpp>
#include <penstock/detail/step_instance.hpp>
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

template <fixed_string Name, class Graph>
class typed_pipeline;

template <fixed_string Name, class... Steps>
class typed_pipeline<Name, detail::graph<Steps...>> {
  using graph_type = detail::graph<Steps...>;

 public:
  static constexpr auto name = Name;
  static constexpr std::size_t node_count = sizeof...(Steps);
  static constexpr std::array<std::string_view, node_count> step_names{Steps::step_name.view()...};
  static constexpr std::size_t edge_count = (Steps::node_input_count + ... + 0);

  struct edge {
    std::uint32_t from;
    std::uint32_t to;
  };
  // Every data dependency, producer → consumer, in topological order.
  static constexpr std::array<edge, edge_count> edges = [] {
    std::array<edge, edge_count> out{};
    std::size_t k = 0;
    std::uint32_t to = 0;
    (
        [&] {
          for (auto producer : Steps::producer_names) out[k++] = {detail::index_of(graph_type{}, producer), to};
          ++to;
        }(),
        ...);
    return out;
  }();

  explicit typed_pipeline(std::vector<std::shared_ptr<const detail::step_base>> outputs)
      : lowered_(std::make_shared<lowered>(std::move(outputs))) {}

  [[nodiscard]] const graph_description& description() const noexcept { return lowered_->description; }

  [[nodiscard]] run_result run(const run_options& options = {}) const {
    return run_result(detail::r1::execute(lowered_->description, options), lowered_->description, lowered_);
  }

 private:
  // The lowered form owns the step instances and the description that points
  // into them; copies of the pipeline share it.
  struct lowered {
    std::vector<std::shared_ptr<const detail::step_base>> roots;
    std::array<const detail::step_base*, node_count> steps{};
    std::vector<node_description> nodes{node_count};
    std::vector<input_description> inputs;
    std::vector<param_description> params;
    std::vector<std::uint32_t> outputs;
    graph_description description;

    explicit lowered(std::vector<std::shared_ptr<const detail::step_base>> outs) : roots(std::move(outs)) {
      collect_steps();
      describe_steps();
      description = {.name = Name.view(), .nodes = nodes, .params = params, .outputs = outputs};
    }

    void collect_steps() {
      std::unordered_map<std::string_view, std::uint32_t> index;
      for (std::uint32_t i = 0; i < node_count; ++i) index.emplace(step_names[i], i);
      std::vector<const detail::step_base*> pending;
      for (const auto& r : roots) {
        pending.push_back(r.get());
        outputs.push_back(index.at(r->name()));
      }
      while (!pending.empty()) {
        const detail::step_base* s = pending.back();
        pending.pop_back();
        const detail::step_base*& slot = steps[index.at(s->name())];
        if (slot == s) continue;
        if (slot != nullptr) {
          if (!slot->same_application(*s)) {
            throw std::invalid_argument(std::string("pipeline '")
                                            .append(Name.view())
                                            .append("': step '")
                                            .append(s->name())
                                            .append("' is applied twice with different callables or arguments; give"
                                                    " each application its own name"));
          }
          continue;  // an equivalent application: one node
        }
        slot = s;
        s->producers(pending);
      }
    }

    void describe_steps() {
      std::vector<std::size_t> first_input(node_count + 1);
      std::uint32_t i = 0;
      (describe_one<Steps>(i++, first_input), ...);
      first_input[node_count] = inputs.size();
      for (std::size_t n = 0; n < node_count; ++n)
        nodes[n].inputs =
            std::span<const input_description>(inputs).subspan(first_input[n], first_input[n + 1] - first_input[n]);
    }

    template <class S>
    void describe_one(std::uint32_t i, std::vector<std::size_t>& first_input) {
      const auto& step = static_cast<const S&>(*steps[i]);
      first_input[i] = inputs.size();
      step.describe(nodes[i], inputs);
      std::vector<param_description> used;
      step.params(used);
      std::size_t next_param = 0;
      std::size_t next_producer = 0;
      for (std::size_t j = first_input[i]; j < inputs.size(); ++j) {
        if (inputs[j].kind == input_kind::node) {
          inputs[j].index = detail::index_of(graph_type{}, S::producer_names[next_producer++]);
        } else if (inputs[j].kind == input_kind::param) {
          inputs[j].index = param_index(used[next_param++], step.name());
        }
      }
    }

    std::uint32_t param_index(const param_description& p, std::string_view step) {
      for (std::uint32_t k = 0; k < params.size(); ++k) {
        if (params[k].name != p.name) continue;
        if (params[k].type != p.type) {
          throw std::invalid_argument(std::string("pipeline '")
                                          .append(Name.view())
                                          .append("': parameter '")
                                          .append(p.name)
                                          .append("' is declared as ")
                                          .append(params[k].type)
                                          .append(" and, in step '")
                                          .append(step)
                                          .append("', as ")
                                          .append(p.type));
        }
        return k;
      }
      params.push_back(p);
      return static_cast<std::uint32_t>(params.size() - 1);
    }
  };

  std::shared_ptr<lowered> lowered_;
};

// What ps::pipeline returns when an output is an error_node: the error has
// been reported; this only keeps the rest of the program from adding more.
template <fixed_string Name>
struct error_pipeline {
  static constexpr std::size_t node_count = 0;
};

template <fixed_string Name, class... Outputs>
[[nodiscard]] auto pipeline(const Outputs&... outputs) {
  static_assert(sizeof...(Outputs) > 0, "ps::pipeline needs at least one output node");
  if constexpr ((std::is_same_v<Outputs, error_node> || ...)) {
    return error_pipeline<Name>{};
  } else {
    using merged = detail::merge_all<typename Outputs::graph_type...>;
    if constexpr (merged::conflict::any) {
      using c = typename detail::first_conflict<typename merged::conflict>::type;
      (void)detail::report<error::duplicate_step_name<c::first::step_name, typename c::first::callable_type,
                                                      typename c::second::callable_type>>();
      return error_pipeline<Name>{};
    } else {
      return typed_pipeline<Name, typename merged::type>(
          std::vector<std::shared_ptr<const detail::step_base>>{outputs.producer()...});
    }
  }
}

}  // namespace penstock
