// command_spec: what a command step (ps::command) is to the runtime, as plain
// data: its argument list, declared outputs, sources and environment. It
// crosses the seam in node_description::command; the runtime resolves the
// program, keys the sources, spawns the process and reads its output
// (runtime/src/command_*.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <penstock/file.hpp>

namespace penstock::detail {

enum class command_part_kind : std::uint8_t {
  literal,  // `text`, passed as it is
  input,    // the value of the step's input `index` (a node or a parameter)
  output,   // the path of declared output `index`
  source,   // the absolute path of declared source `index`
};

struct command_part {
  command_part_kind kind = command_part_kind::literal;
  std::string text{};
  std::uint32_t index = 0;
  friend bool operator==(const command_part&, const command_part&) = default;
};

struct command_output {
  std::string name;  // a relative path inside the attempt's directory
  path_kind kind = path_kind::file;
  friend bool operator==(const command_output&, const command_output&) = default;
};

// A file or directory whose content is part of the key (the script, a
// folder of modules). For a directory, `glob` (fnmatch, matched against
// each file's path relative to it) picks the files; empty takes them all.
struct command_source {
  std::filesystem::path path;  // absolute
  std::string glob{};
  friend bool operator==(const command_source&, const command_source&) = default;
};

// A declared environment variable: set to `value`, or, when `inherit`, to
// the caller's value when the run starts (unset if the caller has none).
// Either way its value is part of the key.
struct command_env {
  std::string name;
  std::string value{};
  bool inherit = false;
  friend bool operator==(const command_env&, const command_env&) = default;
};

struct command_spec {
  std::vector<command_part> argv;
  std::vector<command_output> outputs;
  std::vector<command_source> sources;
  std::vector<command_env> env;
  // Between SIGTERM and SIGKILL when the command is stopped (Ctrl-C, timeout).
  std::chrono::nanoseconds grace{std::chrono::seconds(5)};
  // Per input of the step: the argument text of the value in its slot (a
  // path value: its absolute path; a string: itself; a number: its shortest
  // round-trip form). Throws file_error for a path that cannot be named.
  std::vector<std::string (*)(const void* slot)> input_text;
  // Makes the output slot hold the produced outputs, one path per declared
  // output, in order.
  void (*set_output)(void* slot, const std::vector<std::filesystem::path>& paths) = nullptr;
};

}  // namespace penstock::detail
