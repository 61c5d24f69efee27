// `cache stats` and `cache gc`: see cache_commands.hpp.
#include "cache_commands.hpp"

#include <array>
#include <cctype>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cache_store.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view size_units_help = "B, K/KB/KiB, M/MB/MiB, G/GB/GiB or T/TB/TiB (multiples of 1024)";
constexpr std::string_view duration_units_help = "s, m, h, d or w (seconds, minutes, hours, days, weeks)";

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// The leading whole number of `text` and where it ends; throws for what is
// not one (`what` is "size" or "duration", `example` an example of it).
std::pair<std::uint64_t, std::size_t> leading_number(std::string_view text, std::string_view what,
                                                     std::string_view example) {
  if (text.empty()) throw std::invalid_argument(fmt::format("empty; expected a {} such as {}", what, example));
  if (text.front() == '-') throw std::invalid_argument(fmt::format("a {} cannot be negative", what));
  std::uint64_t value = 0;
  std::size_t i = 0;
  bool overflow = false;
  for (; i < text.size() && is_digit(text[i]); ++i) {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) overflow = true;
    if (!overflow) value = value * 10 + digit;
  }
  if (i == 0) throw std::invalid_argument(fmt::format("not a {}; expected a number such as {}", what, example));
  if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
    throw std::invalid_argument(fmt::format("whole numbers only (e.g. {})", example));
  }
  if (overflow) throw std::invalid_argument(fmt::format("too large a number for a {}", what));
  return {value, i};
}

// Local time with its UTC offset, to the second.
std::string format_time(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm local{};
  if (::localtime_r(&seconds, &local) == nullptr) return "?";
  std::array<char, 64> text{};
  const std::size_t n = std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%S %z", &local);
  return std::string(text.data(), n);
}

std::string format_seconds(std::chrono::nanoseconds d) {
  return fmt::format("{:.3f} s", static_cast<double>(d.count()) / 1e9);
}

// "label            value": one aligned line.
void line(std::ostream& out, std::string_view label, std::string_view value) {
  out << fmt::format("{:<20} {}\n", label, value);
}

std::string bytes_both(std::uint64_t bytes) { return fmt::format("{} ({} bytes)", format_bytes(bytes), bytes); }

// The directory, or nullopt (after saying so) when there is no cache in it
// yet; neither stats nor gc creates one.
std::optional<fs::path> existing_cache(std::ostream& out, std::string_view nothing) {
  const fs::path dir = default_cache_directory();
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    line(out, "cache directory", fmt::format("{} (does not exist: {})", dir.string(), nothing));
    return std::nullopt;
  }
  if (fs::is_directory(dir, ec) && !fs::exists(dir / "index.sqlite", ec)) {
    line(out, "cache directory", fmt::format("{} (holds no cache index: {})", dir.string(), nothing));
    return std::nullopt;
  }
  return dir;  // a file where the directory should be: cache_store says what is wrong
}

int stats_command(std::string_view pipeline_name, std::ostream& out) {
  const auto dir = existing_cache(out, "nothing cached yet");
  if (!dir) return 0;
  cache_store store(*dir);
  const cache_stats stats = store.stats();
  const std::optional<run_record> last = store.last_run(pipeline_name);
  line(out, "cache directory", store.directory().string());
  line(out, "entries", std::to_string(stats.entries));
  line(out, "distinct blobs", std::to_string(stats.blobs));
  line(out, "inline values", std::to_string(stats.inline_values));
  line(out, "total size", bytes_both(stats.bytes));
  line(out, "leases", std::to_string(stats.leases));
  line(out, "pipeline", pipeline_name);
  if (!last) {
    line(out, "last run", "no recorded run");
    return 0;
  }
  line(out, "last run", last->run_id);
  line(out, "  started", format_time(last->started));
  line(out, "  wall time", format_seconds(last->wall));
  line(out, "  steps", std::to_string(last->steps));
  line(out, "  hits", std::to_string(last->hits));
  line(out, "  computed", std::to_string(last->computed));
  line(out, "  reported misses", std::to_string(last->reported_misses));
  line(out, "  failed", std::to_string(last->failed));
  return 0;
}

int gc_command(const cache_commands& commands, std::ostream& out, std::ostream& err) {
  gc_limits limits;
  std::string described;
  const auto option_text = [](const CLI::Option* option) -> std::optional<std::string> {
    if (option == nullptr || option->count() == 0) return std::nullopt;
    return option->results().empty() ? std::string() : option->results().back();
  };
  const auto max_size = option_text(commands.max_size);
  const auto max_age = option_text(commands.max_age);
  if (!max_size && !max_age) {
    err << "error: cache gc: give --max-size SIZE, --max-age DURATION or both (e.g. --max-size 500M --max-age 7d)\n";
    return 2;
  }
  if (max_size) {
    try {
      limits.max_bytes = parse_size(*max_size);
    } catch (const std::invalid_argument& e) {
      err << fmt::format("error: --max-size '{}': {}\n", *max_size, e.what());
      return 2;
    }
    described = fmt::format("at most {}", bytes_both(limits.max_bytes));
  }
  if (max_age) {
    std::chrono::seconds age{};
    try {
      age = parse_duration(*max_age);
    } catch (const std::invalid_argument& e) {
      err << fmt::format("error: --max-age '{}': {}\n", *max_age, e.what());
      return 2;
    }
    limits.max_age = age;
    described += fmt::format("{}entries used within {} ({} s)", described.empty() ? "" : ", ", *max_age, age.count());
  }

  const auto dir = existing_cache(out, "nothing to collect");
  if (!dir) return 0;
  cache_store store(*dir);
  const gc_result r = store.gc(limits);
  const cache_stats after = store.stats();
  line(out, "cache directory", store.directory().string());
  line(out, "limits", described);
  line(out, "entries removed", std::to_string(r.entries_removed));
  line(out, "blobs removed", std::to_string(r.blobs_removed));
  line(out, "bytes freed", bytes_both(r.bytes_freed));
  line(out, "skipped in use", std::to_string(r.skipped_in_use));
  line(out, "bad rows removed", std::to_string(r.bad_rows_removed));
  line(out, "orphans removed", std::to_string(r.orphans_removed));
  line(out, "temporaries removed", std::to_string(r.temporaries_removed));
  line(out, "stale marks removed", std::to_string(r.stale_marks_removed));
  line(out, "entries left", std::to_string(after.entries));
  line(out, "size left", bytes_both(after.bytes));
  return 0;
}

}  // namespace

std::uint64_t parse_size(std::string_view text) {
  const auto [value, end] = leading_number(text, "size", "500M or 2GiB");
  const std::string unit = lowercase(text.substr(end));
  // Nothing or B: bytes. K, M, G or T, alone or followed by B or iB: 1024 to the power 1, 2, 3 or 4.
  constexpr std::string_view prefixes = "kmgt";
  const std::size_t prefix = unit.empty() ? std::string_view::npos : prefixes.find(unit[0]);
  const std::string_view after_prefix = unit.empty() ? std::string_view() : std::string_view(unit).substr(1);
  int power = 0;
  if (unit.empty() || unit == "b") {
    power = 0;
  } else if (prefix != std::string_view::npos &&
             (after_prefix.empty() || after_prefix == "b" || after_prefix == "ib")) {
    power = 1 + static_cast<int>(prefix);
  } else {
    throw std::invalid_argument(fmt::format("unknown unit '{}'; use {}", text.substr(end), size_units_help));
  }
  const std::uint64_t multiplier = std::uint64_t{1} << (10 * power);
  if (value > std::numeric_limits<std::uint64_t>::max() / multiplier) {
    throw std::invalid_argument(
        fmt::format("too large: at most {} bytes (16 EiB)", std::numeric_limits<std::uint64_t>::max()));
  }
  return value * multiplier;
}

std::chrono::seconds parse_duration(std::string_view text) {
  const auto [value, end] = leading_number(text, "duration", "30m or 7d");
  const std::string unit = lowercase(text.substr(end));
  std::uint64_t seconds_per_unit = 0;
  if (unit.empty() || unit == "s") {
    seconds_per_unit = 1;
  } else if (unit == "m") {
    seconds_per_unit = 60;
  } else if (unit == "h") {
    seconds_per_unit = 3600;
  } else if (unit == "d") {
    seconds_per_unit = 86'400;
  } else if (unit == "w") {
    seconds_per_unit = 604'800;
  } else {
    throw std::invalid_argument(fmt::format("unknown unit '{}'; use {}", text.substr(end), duration_units_help));
  }
  const auto limit = static_cast<std::uint64_t>(max_duration.count());
  if (value > limit / seconds_per_unit) {
    throw std::invalid_argument(fmt::format("too long: at most {} s (about 292 years)", limit));
  }
  return std::chrono::seconds(static_cast<std::int64_t>(value * seconds_per_unit));
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  static constexpr std::string_view units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  // 1023.95 and up would print as "1024.0": go to the next unit instead.
  while (value >= 1023.95 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, units[unit]);
}

cache_commands add_cache_commands(CLI::App& app) {
  cache_commands c;
  c.cache = app.add_subcommand("cache", "inspect or trim the step cache ($PENSTOCK_HOME, else ./.penstock)");
  c.cache->require_subcommand(1);
  c.stats = c.cache->add_subcommand(
      "stats", "entries, distinct blobs, size and leases of the cache, and this pipeline's last run");
  c.gc = c.cache->add_subcommand("gc",
                                 "remove least recently used entries (--max-size), long unused ones (--max-age) "
                                 "and debris of dead processes; never what a running process uses");
  c.max_size = c.gc->add_option("--max-size",
                                "remove least recently used entries until the cache holds at most SIZE: a whole "
                                "number with an optional unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB (any case; "
                                "binary multiples, 1K = 1024 bytes), e.g. 500M, 2GiB, 0");
  c.max_size->type_name("SIZE");
  c.max_age = c.gc->add_option("--max-age",
                               "remove entries not used for longer than DURATION: a whole number with a unit s, m, "
                               "h, d or w (seconds, minutes, hours, days, weeks; a plain number is seconds), "
                               "e.g. 30m, 7d");
  c.max_age->type_name("DURATION");
  return c;
}

int run_cache_command(const cache_commands& commands, std::string_view pipeline_name) {
  return run_cache_command(commands, pipeline_name, std::cout, std::cerr);
}

int run_cache_command(const cache_commands& commands, std::string_view pipeline_name, std::ostream& out,
                      std::ostream& err) {
  try {
    if (commands.stats != nullptr && commands.stats->parsed()) return stats_command(pipeline_name, out);
    if (commands.gc != nullptr && commands.gc->parsed()) return gc_command(commands, out, err);
  } catch (const std::exception& e) {
    out.flush();
    err << fmt::format("error: {}\n", e.what());
    return 1;
  }
  err << "error: cache: give a subcommand, stats or gc\n";
  return 2;
}

}  // namespace penstock::detail::r1
