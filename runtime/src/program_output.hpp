// program_output: runs a program (no shell) and returns what it wrote on
// stdout, for the few facts the runtime asks other tools (git's revision).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace penstock::detail::r1 {

// Runs argv[0] (looked up on PATH) with stdin and stderr on /dev/null, in
// `directory`. Its stdout when it exits with 0 within `timeout` (killed
// otherwise); nullopt on any failure. Output beyond 1 MiB is dropped.
[[nodiscard]] std::optional<std::string> program_output(const std::vector<std::string>& argv,
                                                        const std::string& directory,
                                                        std::chrono::milliseconds timeout);

}  // namespace penstock::detail::r1
