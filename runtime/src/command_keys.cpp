#include "command_keys.hpp"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <map>
#include <system_error>
#include <unordered_map>

#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include "cache_session.hpp"
#include "file_values.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

bool executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

const std::string& search_path(const command_spec& spec, std::string& caller) {
  for (const auto& e : spec.env)
    if (e.name == "PATH" && !e.inherit) return e.value;
  if (caller.empty()) {
    const char* path = std::getenv("PATH");
    caller = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  }
  return caller;
}

// The files of a directory source whose relative paths match its glob.
digest matching_digest(const command_source& source, const path_contents& all) {
  if (source.glob.empty()) return all.content;
  hasher h;
  h.update(std::string_view("penstock command source v1")).update(source.glob);
  std::uint64_t picked = 0;
  for (const auto& e : all.entries) {
    if (::fnmatch(source.glob.c_str(), e.path.c_str(), 0) != 0) continue;
    h.update(e.path).update_value(static_cast<std::uint8_t>(e.executable)).update(e.content);
    ++picked;
  }
  return h.update_value(picked).finish();
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
  std::string caller;
  const std::string path = search_path(spec, caller);
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

namespace {

// The files one command's fingerprint needs: indexes into the requests
// (its sources' are sources.size() entries of a shared vector from `first_source`).
struct wanted_files {
  std::size_t program = static_cast<std::size_t>(-1);
  std::size_t first_source = 0;
};

// A command's digest of all it runs with, from its hashed program and sources
// (`hashed`, indexed by `want`); its error instead if one cannot be read.
void digest_command(const command_spec& spec, const wanted_files& want, const std::vector<std::size_t>& source_requests,
                    const std::vector<tree_result>& hashed, command_fingerprint& f) {
  if (!f.error.empty()) return;
  hasher h;
  h.update(std::string_view("penstock command v1"));
  if (want.program != static_cast<std::size_t>(-1)) {
    const tree_result& p = hashed[want.program];
    if (!p.error.empty()) {
      f.error = fmt::format("its program {} cannot be read: {}", printable(f.program), p.error);
      return;
    }
    f.program_content = p.contents.content;
    h.update(f.program).update(f.program_content);
  }
  for (std::size_t k = 0; k < spec.sources.size() && f.error.empty(); ++k) {
    const command_source& source = spec.sources[k];
    const tree_result& r = hashed[source_requests[want.first_source + k]];
    if (!r.error.empty()) {
      f.error = fmt::format("its declared source '{}' cannot be read: {}", printable(source.path.string()), r.error);
      break;
    }
    const digest content = r.kind == path_kind::file ? r.contents.content : matching_digest(source, r.contents);
    h.update(std::string_view(source.path.native())).update(source.glob).update(content);
    f.sources.push_back({.path = source.path.string(), .glob = source.glob, .content = content});
  }
  if (!f.error.empty()) return;
  for (const auto& [name, value] : declared_environment(spec)) {
    h.update(name).update_value(static_cast<std::uint8_t>(value.has_value()));
    if (value) h.update(*value);
    f.env.emplace_back(name, value ? std::optional(hasher().update(*value).finish()) : std::nullopt);
  }
  f.digest_of_all = h.finish();
}

}  // namespace

std::vector<command_fingerprint> fingerprint_commands(std::span<const command_spec* const> specs,
                                                      const std::function<cache_store*()>& stats) {
  std::vector<command_fingerprint> out(specs.size());
  // Programs resolved once per name and search path; files hashed once.
  // The maps' keys are views of the specs' strings and of `programs`' paths.
  struct program {
    fs::path path;
    std::string error;
  };
  std::map<std::pair<std::string_view, std::string_view>, program> programs;
  std::string caller_path;
  std::vector<tree_request> requests;
  std::unordered_map<std::string_view, std::size_t> requested;  // path -> request
  requests.reserve(specs.size() * 2);
  requested.reserve(specs.size() * 2);
  const auto request = [&](const fs::path& path, bool either) {
    const auto [it, added] = requested.emplace(path.native(), requests.size());
    if (added) requests.push_back({.kind = path_kind::file, .path = &path, .either = either});
    return it->second;
  };
  std::vector<wanted_files> wants(specs.size());
  std::vector<std::size_t> source_requests;
  source_requests.reserve(specs.size());
  // Most neighbouring commands run the same program: the last one found is
  // tried before the map (whose keys hold the whole search path).
  decltype(programs)::iterator last = programs.end();
  for (std::size_t c = 0; c < specs.size(); ++c) {
    const command_spec& spec = *specs[c];
    command_fingerprint& f = out[c];
    if (!spec.argv.empty() && spec.argv.front().kind == command_part_kind::literal) {
      const std::string_view name = spec.argv.front().text;
      const std::string_view searched = search_path(spec, caller_path);
      const bool same = last != programs.end() && last->first.first == name &&
                        last->first.second.data() == searched.data() && last->first.second.size() == searched.size();
      auto [it, added] = same ? std::pair{last, false} : programs.try_emplace({name, searched});
      last = it;
      if (added) {
        try {
          const fs::path found = resolve_program(spec, {});
          std::error_code ec;
          fs::path real = fs::canonical(found, ec);
          it->second.path = ec ? found : std::move(real);
        } catch (const std::exception& e) {
          it->second.error = e.what();
        }
      }
      if (!it->second.error.empty()) {
        f.error = it->second.error;
        continue;
      }
      f.program = it->second.path.native();
      wants[c].program = request(it->second.path, false);
    }
    wants[c].first_source = source_requests.size();
    for (const auto& source : spec.sources) source_requests.push_back(request(source.path, true));
  }
  const std::vector<tree_result> hashed = hash_trees(requests, stats);

  // Each command's digest from its hashed files, the commands in parallel.
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, specs.size(), 64), [&](const auto& range) {
    for (std::size_t c = range.begin(); c != range.end(); ++c)
      digest_command(*specs[c], wants[c], source_requests, hashed, out[c]);
  });
  return out;
}

std::string command_parts(const command_spec& spec, const command_fingerprint& f) {
  nlohmann::json parts;
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
  if (!f.program.empty()) parts["program"] = {{"path", printable(f.program)}, {"digest", f.program_content.hex()}};
  auto& sources = parts["sources"] = nlohmann::json::array();
  for (const auto& s : f.sources) {
    nlohmann::json item{{"path", printable(s.path)}, {"digest", s.content.hex()}};
    if (!s.glob.empty()) item["glob"] = printable(s.glob);
    sources.push_back(std::move(item));
  }
  auto& env = parts["env"] = nlohmann::json::array();
  for (const auto& [name, value] : f.env)
    env.push_back({{"name", printable(name)}, {"digest", value ? value->hex() : std::string("unset")}});
  return parts.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
