// step_tables: a run's steps as the workspace stores them, in three compact
// byte strings instead of a row per step (10,000 rows cost a 10,000-step run
// 20 times its own time, bench/RESULTS.md):
//   structure  the pipeline's step names and edges, stored once per
//              structural digest;
//   outcomes   each step's status, attempts, cache key, output digest and
//              element counts, stored once per distinct content (a rerun in
//              which every step hits has the same outcomes as the last one:
//              it stores nothing new);
//   timings    each computed step's start, duration and worker, per run.
// Integers are LEB128 varints. Decoding checks every length and throws
// cache_error for bytes that are not a table. Private to the runtime.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/digest.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/run_report.hpp>

namespace penstock::detail::r1 {

struct structure_table {
  std::vector<std::string> names;  // per node
  // Per node, its inputs from other nodes: producer indices in argument order.
  std::vector<std::vector<std::uint32_t>> inputs;
};

// Status codes in the outcomes table, and their names (`show`, --json).
enum class recorded : std::uint8_t { ran, cached, failed, skipped, cancelled };
[[nodiscard]] const char* to_string(recorded r) noexcept;

struct step_outcome {
  recorded status = recorded::ran;
  std::uint32_t attempts = 0;
  std::optional<digest> key;
  std::optional<digest> output;
  std::uint64_t elements = 0;
  std::uint64_t elements_cached = 0;
};

struct step_timing {
  int worker = -1;  // -1: did not compute (nothing else recorded)
  std::chrono::nanoseconds started{0};
  std::chrono::nanoseconds duration{0};
};

[[nodiscard]] std::string encode_structure(const graph_description& graph);
[[nodiscard]] structure_table decode_structure(std::string_view bytes);
[[nodiscard]] std::vector<step_outcome> decode_outcomes(std::string_view bytes);
[[nodiscard]] std::vector<step_timing> decode_timings(std::string_view bytes);

// The status a step run is recorded with: ran, cached, failed, skipped, cancelled.
[[nodiscard]] recorded recorded_status(const step_report& step) noexcept;
// A run's outcomes and timings tables straight from its report, in one pass
// over it (a 10,000-step run's record is made while its caller waits), with
// its error texts and counts. A cache hit's time and place are left out
// (they are in the report and the trace): a rerun whose steps all hit
// writes one timing byte per step.
struct report_tables {
  std::string outcomes;
  std::string timings;
  std::vector<std::pair<std::uint32_t, std::string>> errors;  // node, its error text (printable)
  std::uint64_t computed = 0, cached = 0, failed = 0;
};
[[nodiscard]] report_tables encode_report(std::span<const step_report> steps);

}  // namespace penstock::detail::r1
