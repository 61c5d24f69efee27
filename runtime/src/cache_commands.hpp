// The `cache` commands of the shared command line (cli.cpp adds them):
//   cache stats                                     what the cache holds, and this pipeline's last run
//   cache gc [--max-size SIZE] [--max-age DURATION] trim it (at least one limit is required)
// Both work on default_cache_directory() (PENSTOCK_HOME, else ./.penstock)
// and never create it. Private to the runtime.
//
// Use from cli.cpp:
//   auto cache = add_cache_commands(app);
//   ... app.parse(argc, argv) ...
//   if (cache.cache->parsed()) return run_cache_command(cache, graph.name);
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace penstock::detail::r1 {

struct cache_commands {
  CLI::App* cache = nullptr;
  CLI::App* stats = nullptr;
  CLI::App* gc = nullptr;
  // The values are read from these options, which the App owns: CLI11 keeps
  // a reference to a bound variable, and this struct is returned by value.
  CLI::Option* max_size = nullptr;
  CLI::Option* max_age = nullptr;
};

// Adds `cache stats` and `cache gc --max-size SIZE --max-age DURATION` under
// `app` (subcommand "cache", which requires one of its subcommands).
[[nodiscard]] cache_commands add_cache_commands(CLI::App& app);

// Runs the parsed `cache` subcommand against default_cache_directory(),
// printing to stdout (errors to stderr). Returns the exit code: 0 ok (also
// when the cache directory does not exist); 2 a bad or missing SIZE /
// DURATION, with a message naming the option and the text; 1 a failure of
// the store, with its message.
int run_cache_command(const cache_commands& commands, std::string_view pipeline_name);
// The same, printing to `out` and `err`.
int run_cache_command(const cache_commands& commands, std::string_view pipeline_name, std::ostream& out,
                      std::ostream& err);

// SIZE: a whole number of bytes with an optional, case-insensitive unit: B,
// K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB, all binary multiples (1K = 1024).
// "500M", "2GiB", "0". Throws std::invalid_argument saying what is wrong
// (empty, negative, not a number, fractional, unknown unit, more than 2^64-1).
[[nodiscard]] std::uint64_t parse_size(std::string_view text);

// DURATION: a whole number with an optional, case-insensitive unit s, m, h,
// d or w (seconds, minutes, hours, days, weeks); a plain number is seconds.
// "30m", "7d", "0". At most max_duration (what fits in nanoseconds, about
// 292 years). Throws std::invalid_argument saying what is wrong.
inline constexpr std::chrono::seconds max_duration{9'223'372'036};
[[nodiscard]] std::chrono::seconds parse_duration(std::string_view text);

// A byte count for people: "999 B", "1.5 KiB", "2.0 GiB" (binary units).
[[nodiscard]] std::string format_bytes(std::uint64_t bytes);

}  // namespace penstock::detail::r1
