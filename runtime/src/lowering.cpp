// Lowering: a pipeline's typed steps, reached through their handles'
// pointers, collected once into the flat graph_description the runtime runs.
// Also where a name used by two different steps is found and reported.
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <penstock/detail/runtime_api.hpp>
#include <penstock/detail/step_base.hpp>

namespace penstock::detail::r1 {

struct lowered_pipeline {
  std::vector<std::shared_ptr<const step_base>> roots;  // own every step, through their inputs
  std::vector<const step_base*> steps;                  // in topological order
  std::vector<node_description> nodes;
  std::vector<input_description> inputs;
  std::vector<param_description> params;
  std::vector<std::uint32_t> outputs;
  graph_description description;
  std::shared_ptr<const schedule> plan;  // derived from description
};

namespace {

std::string defined_at(const step_base& step) {
  if (step.options.source_file.empty()) return "at an unknown place";
  return fmt::format("at {}:{}", step.options.source_file, step.options.source_line);
}

class lowering {
 public:
  lowering(std::string_view pipeline, lowered_pipeline& out) : pipeline_(pipeline), out_(out) {}

  void collect() {
    for (const auto& root : out_.roots) {
      visit(root.get());
      while (!frames_.empty()) {
        frame& top = frames_.back();
        if (top.next != children_.size()) {
          visit(children_[top.next++]);  // may push a frame: `top` is not used after this
          continue;
        }
        children_.resize(top.children);
        index_[top.step] = static_cast<std::uint32_t>(out_.steps.size());
        out_.steps.push_back(top.step);
        frames_.pop_back();
      }
      out_.outputs.push_back(index_.at(root.get()));
    }
  }

  void describe() {
    const std::size_t n = out_.steps.size();
    out_.nodes.resize(n);
    std::vector<std::size_t> first_input(n + 1);
    std::vector<const step_base*> producers;
    std::vector<param_description> params;
    for (std::size_t i = 0; i < n; ++i) {
      const step_base& step = *out_.steps[i];
      first_input[i] = out_.inputs.size();
      step.describe(out_.nodes[i], out_.inputs);
      producers.clear();
      params.clear();
      step.producers(producers);
      step.params(params);
      std::size_t next_producer = 0;
      std::size_t next_param = 0;
      for (std::size_t j = first_input[i]; j < out_.inputs.size(); ++j) {
        input_description& in = out_.inputs[j];
        if (in.kind == input_kind::node) {
          in.index = index_.at(producers.at(next_producer++));
        } else if (in.kind == input_kind::param) {
          in.index = param_index(params.at(next_param++), step.name());
        }
      }
    }
    first_input[n] = out_.inputs.size();
    for (std::size_t i = 0; i < n; ++i)
      out_.nodes[i].inputs =
          std::span<const input_description>(out_.inputs).subspan(first_input[i], first_input[i + 1] - first_input[i]);
  }

 private:
  static constexpr std::uint32_t in_progress = std::numeric_limits<std::uint32_t>::max();

  // A step entered and not yet placed: its producers are children_[children, ...).
  struct frame {
    const step_base* step;
    std::size_t children;
    std::size_t next;
  };

  void visit(const step_base* step) {
    if (index_.contains(step)) return;  // placed already (or an alias of a placed step)
    const auto [named, fresh] = names_.emplace(step->name(), step);
    if (!fresh) {
      const step_base& first = *named->second;
      if (index_.at(&first) == in_progress) {  // `first` is being entered: `step` is upstream of it
        throw std::invalid_argument(fmt::format(
            "pipeline '{}': step '{}' (defined {}) is named like one of its own inputs' ancestors (defined {}); give "
            "each its own name",
            pipeline_, step->name(), defined_at(first), defined_at(*step)));
      }
      if (!first.same_application(*step)) {
        const std::string a = defined_at(first), b = defined_at(*step);
        if (a == b) {
          throw std::invalid_argument(fmt::format(
              "pipeline '{}': step '{}' (defined {}) is applied twice with different callables or arguments; give "
              "each application its own name",
              pipeline_, step->name(), a));
        }
        throw std::invalid_argument(
            fmt::format("pipeline '{}': two different steps are named '{}', one defined {} and one {}; give each its "
                        "own name",
                        pipeline_, step->name(), a, b));
      }
      index_.emplace(step, index_.at(&first));  // an equal application: one node
      return;
    }
    index_.emplace(step, in_progress);
    const std::size_t begin = children_.size();
    step->producers(children_);
    frames_.push_back({step, begin, begin});
  }

  std::uint32_t param_index(const param_description& p, std::string_view step) {
    const auto [known, fresh] = param_names_.emplace(p.name, static_cast<std::uint32_t>(out_.params.size()));
    if (fresh) {
      out_.params.push_back(p);
    } else if (const param_description& first = out_.params[known->second]; first.type != p.type) {
      throw std::invalid_argument(
          fmt::format("pipeline '{}': parameter '{}' is declared as {} and, in step '{}', as {}", pipeline_, p.name,
                      first.type, step, p.type));
    }
    return known->second;
  }

  std::string_view pipeline_;
  lowered_pipeline& out_;
  std::unordered_map<const step_base*, std::uint32_t> index_;
  std::unordered_map<std::string_view, const step_base*> names_;
  std::unordered_map<std::string_view, std::uint32_t> param_names_;
  std::vector<frame> frames_;
  std::vector<const step_base*> children_;
};

}  // namespace

std::shared_ptr<const lowered_pipeline> lower(std::string_view pipeline,
                                              std::vector<std::shared_ptr<const step_base>> outputs) {
  auto out = std::make_shared<lowered_pipeline>();
  out->roots = std::move(outputs);
  lowering walk(pipeline, *out);
  walk.collect();
  walk.describe();
  out->description = {.name = pipeline, .nodes = out->nodes, .params = out->params, .outputs = out->outputs};
  out->plan = make_schedule(out->description);
  return out;
}

const graph_description& description(const lowered_pipeline& lowered) noexcept { return lowered.description; }
const schedule& schedule_of(const lowered_pipeline& lowered) noexcept { return *lowered.plan; }

}  // namespace penstock::detail::r1
