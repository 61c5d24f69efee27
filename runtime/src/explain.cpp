#include "explain.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cache_session.hpp"
#include "cache_store.hpp"
#include "command_keys.hpp"
#include "file_values.hpp"
#include "run_state.hpp"

namespace penstock::detail::r1 {

namespace {

// Why a keyed step misses: the first part of its key that differs from the
// step's last record in this cache.
std::string miss_reason(const nlohmann::json& now, const nlohmann::json* before) {
  if (before == nullptr) return "no earlier run of this step in this cache";
  const auto& was = *before;
  if (now.contains("command")) {
    std::string changed = command_change(was.value("command", nlohmann::json()), now["command"]);
    if (!changed.empty()) return changed;
  }
  if (was.value("version", 0u) != now.value("version", 0u))
    return fmt::format("version changed: {} -> {}", was.value("version", 0u), now.value("version", 0u));
  if (was["code"] != now["code"]) {
    if (now["code"].is_null())
      return fmt::format("code fingerprint now unknown ({} is not registered by penstock_code_fingerprints)",
                         now.value("source", std::string("?")));
    return fmt::format("code changed: {}", now.value("source", std::string("?")));
  }
  const auto& old_inputs = was["inputs"];
  const auto& new_inputs = now["inputs"];
  if (old_inputs.size() == new_inputs.size()) {
    for (std::size_t j = 0; j < new_inputs.size(); ++j) {
      const auto& a = old_inputs[j];
      const auto& b = new_inputs[j];
      if (a.value("kind", "") != b.value("kind", "") || a.value("name", "") != b.value("name", "")) break;
      if (a["digest"] == b["digest"] || b.value("kind", "") == "constant") continue;
      if (b.value("kind", "") == "param" && a.value("value", "?") == b.value("value", "?"))
        return fmt::format("parameter '{}' changed: {} has new content", b.value("name", ""), b.value("value", "?"));
      if (b.value("kind", "") == "param")
        return fmt::format("parameter '{}' changed: {} -> {}", b.value("name", ""), a.value("value", "?"),
                           b.value("value", "?"));
      return fmt::format("input from step '{}' changed", b.value("name", ""));
    }
  }
  if (was["identity"] != now["identity"]) return "definition changed (output type, constant arguments or inputs)";
  return "same key as its last run, but its entry is gone (removed by cache gc, or its blob is missing)";
}

}  // namespace

std::vector<step_explanation> explain(const graph_description& graph, const run_options& options) {
  run_state state(graph);
  resolve_params(graph, state, options);
  cache_store store(options.cache.directory.empty() ? default_cache_directory()
                                                    : std::filesystem::path(options.cache.directory));
  seal_file_params(graph, state, &store);

  std::map<std::string, nlohmann::json, std::less<>> last;
  for (const auto& record : store.last_steps(graph.name)) {
    try {
      last.emplace(record.step, nlohmann::json::parse(record.components));
    } catch (const nlohmann::json::exception&) {
      // An unreadable record only loses the reason, not the answer.
    }
  }

  const auto params = param_digests(graph, state);
  const auto forced = forced_steps(graph, options.cache.rerun);
  std::vector<std::optional<digest>> content(graph.nodes.size());

  const std::vector<node_code> codes = codes_of(graph, &store);
  std::vector<step_explanation> out;
  for (std::uint32_t i = 0; i < graph.nodes.size(); ++i) {
    const node_description& node = graph.nodes[i];
    step_explanation e{.step = std::string(node.name)};
    const auto inputs = input_digests(node, content, params);
    // The first input whose digest is unknown names why the key is.
    std::string unknown_input;
    for (std::size_t j = 0; j < node.inputs.size() && unknown_input.empty(); ++j) {
      const auto& in = node.inputs[j];
      if (inputs[j] || in.kind == input_kind::constant) continue;
      unknown_input = in.kind == input_kind::node
                          ? std::string(graph.nodes[in.index].name)
                          : fmt::format("parameter '{}' (not serializable)", graph.params[in.index].name);
    }
    const node_code& found_code = codes[i];
    const auto& code = found_code.code;
    const auto key = step_key(node, inputs, code);
    if (node.options.cache == cache_policy::never) {
      e.reason = "always runs (.cache(ps::never))";
    } else if (!node.cacheable) {
      e.reason = "always runs (a constant argument cannot be hashed)";
    } else if (!found_code.unkeyable.empty()) {
      e.reason = fmt::format("always runs: {}", found_code.unkeyable);
    } else if (forced[i]) {
      e.reason = "--rerun of this step or of a step it depends on";
    } else if (!key) {
      e.reason = unknown_input.find("parameter") == 0
                     ? fmt::format("always runs: {} cannot be hashed", unknown_input)
                     : fmt::format(
                           "input from step '{}' is recomputed first (a hit after all if that step "
                           "reproduces the same output: early cutoff)",
                           unknown_input);
    } else {
      const cache_result found = store.lookup(*key);
      std::error_code ec;
      if (found.hit() &&
          (found.entry.inline_value || std::filesystem::exists(store.blob_path(found.entry.content), ec))) {
        e.hit = true;
        content[i] = found.entry.content;
      } else {
        const auto now = nlohmann::json::parse(key_parts(graph, i, state, inputs, code, std::nullopt,
                                                         found_code.command ? &*found_code.command : nullptr));
        const auto it = last.find(node.name);
        e.reason = miss_reason(now, it == last.end() ? nullptr : &it->second);
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string format_explanation(const std::vector<step_explanation>& steps) {
  std::size_t width = 4;
  for (const auto& s : steps) width = std::max(width, s.step.size());
  std::string out;
  std::size_t hits = 0;
  for (const auto& s : steps) {
    hits += s.hit ? 1 : 0;
    out += fmt::format("{:<{}}  {}{}\n", s.step, width, s.hit ? "HIT " : "MISS",
                       s.reason.empty() ? std::string() : "  " + s.reason);
  }
  out += fmt::format("{} of {} steps cached\n", hits, steps.size());
  return out;
}

}  // namespace penstock::detail::r1
