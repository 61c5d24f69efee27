// The compiled runtime's entry points, as the headers call them. Like
// oneTBB's r1 layer: a short list of plain functions over the type-erased
// graph description; everything behind them lives in runtime/.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string_view>
#include <vector>

#include <penstock/context.hpp>
#include <penstock/digest.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/run_report.hpp>

namespace penstock::detail {
struct step_base;
}

namespace penstock::detail::r1 {

// A pipeline's steps as the runtime runs them: the steps (kept alive), the
// description that points into them, its inputs, parameters and outputs.
struct lowered_pipeline;

// Collects every step the outputs depend on, each once (two handles to one
// application, or to equal applications of one definition, are one step), in
// topological order: depth first from the outputs in order, each step after
// its inputs in argument order. Linear in the steps and edges. Throws
// std::invalid_argument naming the pipeline when two different steps have
// one name (both definitions by file and line), a step is named like one of
// its own inputs' ancestors, or a parameter is declared with two types.
std::shared_ptr<const lowered_pipeline> lower(std::string_view pipeline,
                                              std::vector<std::shared_ptr<const step_base>> outputs);
const graph_description& description(const lowered_pipeline& lowered) noexcept;

// The values of one run: a slot per node and per parameter.
class run_state;

struct run_outcome {
  std::shared_ptr<run_state> state;
  run_report report;
};

// What the executor derives from a graph before it runs it (each node's
// consumers and first countdown, the nodes that start the run): a pipeline
// derives it once, when it is built (schedule_of), instead of on every run.
struct schedule;
std::shared_ptr<const schedule> make_schedule(const graph_description& graph);
const schedule& schedule_of(const lowered_pipeline& lowered) noexcept;

// Runs the graph, with `plan` (made by make_schedule from this graph) or,
// when null, a schedule it derives itself. Throws param_error before running
// anything if a parameter is unknown, missing or malformed.
run_outcome execute(const graph_description& graph, const run_options& options, const schedule* plan = nullptr);

// Until every run of this process that ended is in its workspace (see
// tracking_options::write_behind).
void wait_for_records();

// The output slot of node `index` after a run (a std::optional<T>*), or
// null if that node did not succeed or its value was released.
const void* output_slot(const run_state& state, std::size_t index) noexcept;

// How a ps::map's elements are cached one by one: each element's result is
// keyed on the map's identity, its code and the element's content digest, so
// a new element in the input reruns that element only. All null when the
// element or result type cannot be serialized.
struct element_cache_functions {
  digest (*input_digest)(const void* data, std::size_t i) = nullptr;
  digest (*save_result)(const void* data, std::size_t i, std::ostream& out) = nullptr;  // digest of what it wrote
  void (*load_result)(void* data, std::size_t i, std::istream& in) = nullptr;
};

// Runs element_fn for i in [0, n) as parallel tasks, each with its own
// context (element index set), retrying each element `retries` times. The
// first failure is rethrown, naming the element. When the run caches this
// step (node_ctx.element_cache()), cached elements are read instead of run.
void for_each_element(const context& node_ctx, std::size_t n, std::uint32_t retries,
                      void (*element_fn)(void* data, std::size_t i, context& element_ctx), void* data,
                      const element_cache_functions& cache = {});

// The command-line interface shared by every pipeline binary.
int main(const graph_description& graph, int argc, const char* const* argv);

}  // namespace penstock::detail::r1
