// command_keys: what of a command step (ps::command) the runtime keys when a
// run starts, beyond its identity: the program its first argument resolves
// to (by PATH, as execvp would) and that file's content, the content of each
// declared source, and the value of each declared environment variable.
// Private to the runtime.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <penstock/detail/command_spec.hpp>
#include <penstock/digest.hpp>

namespace penstock::detail::r1 {

class cache_store;

// Where a command's program is: argv[0] as given when it names a path
// (relative to the current directory), else the first executable file of
// that name on PATH (the declared PATH when the command sets one). A
// program given as a source or an input is that value's path, passed in
// `first_argument`. Throws file_error saying what was searched.
[[nodiscard]] std::filesystem::path resolve_program(const command_spec& spec, const std::string& first_argument);

// The declared environment as the command gets it: each name with its
// value, or nullopt for an inherited variable the caller does not have.
[[nodiscard]] std::vector<std::pair<std::string, std::optional<std::string>>> declared_environment(
    const command_spec& spec);

// What a command's key takes from outside when a run starts.
struct command_fingerprint {
  std::optional<digest> digest_of_all;  // nullopt: something could not be read (`error` says what)
  std::string error{};
  std::string program{};  // its resolved path, when argv[0] is a literal
  digest program_content{};
  struct source_content {
    std::string path;
    std::string glob;
    digest content;
  };
  std::vector<source_content> sources{};
  std::vector<std::pair<std::string, std::optional<digest>>> env{};  // each value's digest (nullopt: unset)
};

// Fingerprints every command at once: each program is resolved once and
// each file hashed once, with one question to the store's stat cache for
// all of them (a 1,000-command rerun would otherwise ask 2,000 times).
// `stats` is asked for once the files are stat'ed (it may wait for a store
// still being opened).
[[nodiscard]] std::vector<command_fingerprint> fingerprint_commands(std::span<const command_spec* const> specs,
                                                                    const std::function<cache_store*()>& stats);

// The fingerprint's parts as JSON (for the step's record and `explain`):
// program, sources, env (values as digests: a variable may hold a secret)
// and the command line as written.
[[nodiscard]] std::string command_parts(const command_spec& spec, const command_fingerprint& f);

// Why a command's key differs from its last run's, from the `parts` of
// both (as key_parts records them); empty when these parts are equal.
[[nodiscard]] std::string command_change(const nlohmann::json& before, const nlohmann::json& now);

}  // namespace penstock::detail::r1
