// chrome_trace: a run as a Chrome trace (the JSON "Trace Event Format" that
// Perfetto and chrome://tracing load): a track per oneTBB worker, each
// computed step a slice on its worker's track, each cache hit an instant
// marked "cached" where it was found. Private to the runtime.
#pragma once

#include <filesystem>
#include <string>

#include <penstock/graph_description.hpp>
#include <penstock/run_report.hpp>

namespace penstock::detail::r1 {

// The trace of `report` (a run of `graph`) as JSON text.
[[nodiscard]] std::string chrome_trace(const graph_description& graph, const run_report& report);

// Writes it to `file` (through a temporary file and a rename); throws
// std::runtime_error naming the file when it cannot be written.
void write_chrome_trace(const graph_description& graph, const run_report& report, const std::filesystem::path& file);

}  // namespace penstock::detail::r1
