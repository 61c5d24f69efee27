// explain: for each step of a pipeline, whether a run now would find it in
// the cache (HIT) or run it (MISS), and why: which parameter, input, version
// or code fingerprint differs from the last run that produced it. Nothing is
// run and no value is read: only keys, the index and the step records.
// Private to the runtime; the CLI's `explain` prints it.
#pragma once

#include <string>
#include <vector>

#include <penstock/graph_description.hpp>
#include <penstock/run_report.hpp>

namespace penstock::detail::r1 {

struct step_explanation {
  std::string step;
  bool hit = false;
  std::string reason{};  // empty for a plain hit
};

// Throws param_error for bad parameters (like execute) and cache_error when
// the cache cannot be opened.
[[nodiscard]] std::vector<step_explanation> explain(const graph_description& graph, const run_options& options);

// The table `explain` prints: one line per step, aligned.
[[nodiscard]] std::string format_explanation(const std::vector<step_explanation>& steps);

}  // namespace penstock::detail::r1
