#include "command_keys.hpp"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <system_error>

#include <fmt/format.h>

#include "cache_session.hpp"
#include "file_values.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

bool executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

std::string search_path(const command_spec& spec) {
  for (const auto& e : spec.env)
    if (e.name == "PATH" && !e.inherit) return e.value;
  const char* path = std::getenv("PATH");
  return path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
}

// A directory source's files whose relative paths match its glob.
path_contents hash_matching(const command_source& source, cache_store* stats) {
  path_contents all = hash_tree(path_kind::directory, source.path, stats);
  if (source.glob.empty()) return all;
  path_contents picked;
  hasher h;
  h.update(std::string_view("penstock command source v1")).update(source.glob);
  for (auto& e : all.entries) {
    if (::fnmatch(source.glob.c_str(), e.path.c_str(), 0) != 0) continue;
    h.update(e.path).update_value(static_cast<std::uint8_t>(e.executable)).update(e.content);
    picked.entries.push_back(std::move(e));
  }
  h.update_value(static_cast<std::uint64_t>(picked.entries.size()));
  picked.content = h.finish();
  return picked;
}

}  // namespace

fs::path resolve_program(const command_spec& spec, const std::string& first_argument) {
  const command_part& first = spec.argv.front();
  if (first.kind != command_part_kind::literal) return fs::path(first_argument);
  const std::string& name = first.text;
  if (name.empty()) throw file_error("its program (the first argument) is empty");
  std::error_code ec;
  if (name.find('/') != std::string::npos) {
    const fs::path p = fs::absolute(name, ec);
    if (!executable_file(p)) throw file_error(fmt::format("program '{}' is not an executable file", p.string()));
    return p;
  }
  const std::string path = search_path(spec);
  std::size_t begin = 0;
  while (begin <= path.size()) {
    const std::size_t end = std::min(path.find(':', begin), path.size());
    const std::string dir = path.substr(begin, end - begin);
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (executable_file(candidate)) return fs::absolute(candidate, ec);
    begin = end + 1;
  }
  throw file_error(fmt::format("program '{}' was not found on PATH ({})", printable(name), printable(path)));
}

std::vector<std::pair<std::string, std::optional<std::string>>> declared_environment(const command_spec& spec) {
  std::vector<std::pair<std::string, std::optional<std::string>>> out;
  for (const auto& e : spec.env) {
    std::optional<std::string> value;
    if (!e.inherit) {
      value = e.value;
    } else if (const char* v = std::getenv(e.name.c_str()); v != nullptr) {
      value = std::string(v);
    }
    // A later declaration of the same name wins, as in the environment.
    const auto it = std::find_if(out.begin(), out.end(), [&](const auto& kv) { return kv.first == e.name; });
    if (it != out.end()) {
      it->second = std::move(value);
    } else {
      out.emplace_back(e.name, std::move(value));
    }
  }
  return out;
}

command_fingerprint fingerprint_command(const command_spec& spec, cache_store* stats) {
  command_fingerprint out;
  nlohmann::json parts;
  hasher h;
  h.update(std::string_view("penstock command v1"));
  try {
    auto& argv = parts["argv"] = nlohmann::json::array();
    for (const auto& part : spec.argv) {
      switch (part.kind) {
        case command_part_kind::literal: argv.push_back(printable(part.text)); break;
        case command_part_kind::input: argv.push_back(fmt::format("<input {}>", part.index)); break;
        case command_part_kind::output:
          argv.push_back("<output " + printable(spec.outputs[part.index].name) + ">");
          break;
        case command_part_kind::source:
          argv.push_back("<source " + printable(spec.sources[part.index].path.string()) + ">");
          break;
      }
    }
    if (spec.argv.front().kind == command_part_kind::literal) {
      const fs::path program = resolve_program(spec, {});
      std::error_code ec;
      const fs::path real = fs::canonical(program, ec);
      const path_contents c = hash_tree(path_kind::file, ec ? program : real, stats);
      h.update(std::string_view(real.native())).update(c.content);
      parts["program"] = {{"path", printable((ec ? program : real).string())}, {"digest", c.content.hex()}};
    }
    auto& sources = parts["sources"] = nlohmann::json::array();
    for (const auto& source : spec.sources) {
      std::error_code ec;
      const bool dir = fs::is_directory(source.path, ec);
      path_contents c;
      try {
        c = dir ? hash_matching(source, stats) : hash_tree(path_kind::file, source.path, stats);
      } catch (const file_error& e) {
        throw file_error(
            fmt::format("declared source '{}' cannot be read: {}", printable(source.path.string()), e.what()));
      }
      h.update(std::string_view(source.path.native())).update(source.glob).update(c.content);
      nlohmann::json item{{"path", printable(source.path.string())}, {"digest", c.content.hex()}};
      if (!source.glob.empty()) item["glob"] = printable(source.glob);
      sources.push_back(std::move(item));
    }
    auto& env = parts["env"] = nlohmann::json::array();
    for (const auto& [name, value] : declared_environment(spec)) {
      h.update(name).update_value(static_cast<std::uint8_t>(value.has_value()));
      if (value) h.update(*value);
      // The value's digest, not the value: a variable may hold a secret.
      env.push_back({{"name", printable(name)},
                     {"digest", value ? hasher().update(*value).finish().hex() : std::string("unset")}});
    }
    out.digest_of_all = h.finish();
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  out.parts = parts.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return out;
}

std::string command_change(const nlohmann::json& before, const nlohmann::json& now) {
  if (!before.is_object() || !now.is_object()) return {};
  if (before.value("program", nlohmann::json()) != now.value("program", nlohmann::json())) {
    const auto& a = before.value("program", nlohmann::json::object());
    const auto& b = now.value("program", nlohmann::json::object());
    if (a.value("path", "") != b.value("path", ""))
      return fmt::format("program changed: {} -> {}", a.value("path", "?"), b.value("path", "?"));
    return fmt::format("program {} changed", b.value("path", "?"));
  }
  const auto& old_sources = before.value("sources", nlohmann::json::array());
  const auto& new_sources = now.value("sources", nlohmann::json::array());
  for (std::size_t j = 0; j < new_sources.size(); ++j) {
    if (j >= old_sources.size() || old_sources[j].value("path", "") != new_sources[j].value("path", ""))
      return fmt::format("sources changed: {} is new", new_sources[j].value("path", "?"));
    if (old_sources[j] != new_sources[j]) return fmt::format("source {} changed", new_sources[j].value("path", "?"));
  }
  if (old_sources.size() > new_sources.size()) return "sources changed: one is no longer declared";
  const auto& old_env = before.value("env", nlohmann::json::array());
  const auto& new_env = now.value("env", nlohmann::json::array());
  for (const auto& b : new_env) {
    const auto it = std::find_if(old_env.begin(), old_env.end(),
                                 [&](const auto& a) { return a.value("name", "") == b.value("name", ""); });
    if (it == old_env.end()) return fmt::format("environment variable {} is newly declared", b.value("name", "?"));
    if (*it != b) return fmt::format("environment variable {} changed", b.value("name", "?"));
  }
  if (old_env.size() != new_env.size()) return "environment changed: a variable is no longer declared";
  if (before.value("argv", nlohmann::json()) != now.value("argv", nlohmann::json())) {
    return fmt::format("command line changed: {} -> {}", before.value("argv", nlohmann::json()).dump(),
                       now.value("argv", nlohmann::json()).dump());
  }
  return {};
}

}  // namespace penstock::detail::r1
