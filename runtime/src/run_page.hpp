// run_page: one run as a self-contained HTML page (`show RUN --html
// FILE.html`) that works offline: the pipeline's graph with each step
// coloured by its status, the computed steps on a timeline per worker, a plot
// per metric, the parameters, and a table of the steps. Inline SVG and CSS
// only: no script, nothing fetched. Private to the runtime.
#pragma once

#include <string>
#include <vector>

#include "workspace_store.hpp"

namespace penstock::detail::r1 {

struct run_page_data {
  run_row run;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<step_run_row> steps;
  std::vector<step_input_row> inputs;
  std::vector<metric_row> metrics;
};

[[nodiscard]] std::string run_page(const run_page_data& data);

}  // namespace penstock::detail::r1
