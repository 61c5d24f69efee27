// Parameter resolution: every parameter's slot set before any step runs (its
// default, then run_options::params parsed by its type), so a bad value costs
// nothing and its error names the parameter.
#include <algorithm>
#include <exception>
#include <string>

#include <fmt/format.h>

#include "printable.hpp"
#include "run_state.hpp"

namespace penstock::detail::r1 {

void resolve_params(const graph_description& graph, run_state& state, const run_options& options) {
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    p.set_default(p.param, state.param_slots[i]);
  }
  for (const auto& [name, text] : options.params) {
    const auto it =
        std::find_if(graph.params.begin(), graph.params.end(), [&](const auto& p) { return p.name == name; });
    if (it == graph.params.end()) {
      std::string known;
      for (const auto& p : graph.params) known += (known.empty() ? "" : ", ") + std::string(p.name);
      throw param_error(fmt::format("unknown parameter '{}'; pipeline '{}' has {}", printable(name), graph.name,
                                    known.empty() ? "no parameters" : "parameters: " + known));
    }
    try {
      it->parse(state.param_slots[static_cast<std::size_t>(it - graph.params.begin())], text);
    } catch (const std::exception& e) {
      // What was typed may be any bytes: shown as printable() shows them.
      throw param_error(fmt::format("parameter '{}' ({}): cannot use \"{}\": {}", name, it->type, printable(text),
                                    printable(e.what())));
    }
  }
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    if (!p.slot.has_value(state.param_slots[i])) {
      throw param_error(fmt::format("parameter '{}' ({}) has no value; pass --param {}=VALUE", p.name, p.type, p.name));
    }
  }
}

}  // namespace penstock::detail::r1
