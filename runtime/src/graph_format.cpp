// DOT, Mermaid and `describe` output; see graph_format.hpp.
#include "graph_format.hpp"

#include "run_state.hpp"

#include <cstddef>
#include <string_view>

#include <fmt/format.h>

namespace penstock::detail::r1 {

namespace {

// What `graph` and `describe` put before a node's name.
const char* kind_label(node_kind kind) {
  switch (kind) {
    case node_kind::map: return "map ";
    case node_kind::command: return "command ";
    case node_kind::step: return "";
  }
  return "";
}

std::string dot_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string mermaid_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '"': out += "#quot;"; break;
      case '<': out += "#lt;"; break;
      case '>': out += "#gt;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string param_default(const param_description& p) {
  if (!p.has_default) return "required";
  const slot_block block(std::span(&p.slot, 1));
  p.set_default(p.param, block[0]);
  return "default " + p.slot.format(block[0]);
}

}  // namespace

std::string to_dot(const graph_description& graph) {
  std::string out =
      fmt::format("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", dot_escape(graph.name));
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    out += fmt::format("  p{} [shape=ellipse, label=\"{}\\n{}\"];\n", i, dot_escape(p.name), dot_escape(p.type));
  }
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const auto& n = graph.nodes[i];
    // GPU steps are drawn with a double border.
    out += fmt::format("  n{} [label=\"{}{}\\n{}\"{}];\n", i, kind_label(n.kind), dot_escape(n.name),
                       dot_escape(n.output_type), n.options.where == placement::gpu ? ", peripheries=2" : "");
  }
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const auto& in : graph.nodes[i].inputs) {
      if (in.kind == input_kind::constant) continue;
      const char prefix = in.kind == input_kind::node ? 'n' : 'p';
      if (in.projection.empty()) {
        out += fmt::format("  {}{} -> n{};\n", prefix, in.index, i);
      } else {
        out += fmt::format("  {}{} -> n{} [label=\"{}\"];\n", prefix, in.index, i, dot_escape(in.projection));
      }
    }
  }
  out += "}\n";
  return out;
}

std::string to_mermaid(const graph_description& graph) {
  std::string out = "flowchart LR\n";
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    out += fmt::format("  p{}([\"{}<br/>{}\"])\n", i, mermaid_escape(p.name), mermaid_escape(p.type));
  }
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const auto& n = graph.nodes[i];
    out += fmt::format("  n{}[\"{}{}<br/>{}\"]\n", i, kind_label(n.kind), mermaid_escape(n.name),
                       mermaid_escape(n.output_type));
  }
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const auto& in : graph.nodes[i].inputs) {
      if (in.kind == input_kind::constant) continue;
      const char prefix = in.kind == input_kind::node ? 'n' : 'p';
      if (in.projection.empty()) {
        out += fmt::format("  {}{} --> n{}\n", prefix, in.index, i);
      } else {
        out += fmt::format("  {}{} -->|{}| n{}\n", prefix, in.index, mermaid_escape(in.projection), i);
      }
    }
  }
  return out;
}

std::string describe(const graph_description& graph) {
  std::string out =
      fmt::format("pipeline '{}': {} step{}, {} parameter{}\n", graph.name, graph.nodes.size(),
                  graph.nodes.size() == 1 ? "" : "s", graph.params.size(), graph.params.size() == 1 ? "" : "s");
  if (!graph.params.empty()) {
    out += "\nparameters:\n";
    for (const auto& p : graph.params) out += fmt::format("  {:<16} {:<24} {}\n", p.name, p.type, param_default(p));
  }
  out += "\nsteps, in order:\n";
  for (const auto& n : graph.nodes) {
    std::string inputs;
    for (const auto& in : n.inputs) {
      if (!inputs.empty()) inputs += ", ";
      switch (in.kind) {
        case input_kind::node:
          inputs += fmt::format("{} from {}{}{}", in.type, graph.nodes[in.index].name, in.projection.empty() ? "" : ".",
                                in.projection);
          break;
        case input_kind::param: inputs += fmt::format("{} from param {}", in.type, graph.params[in.index].name); break;
        case input_kind::constant: inputs += fmt::format("{} constant", in.type); break;
      }
    }
    std::string opts;
    if (n.options.where == placement::gpu) opts += " on=gpu";
    if (n.options.version != 0) opts += fmt::format(" version={}", n.options.version);
    if (n.options.retries != 0) opts += fmt::format(" retries={}", n.options.retries);
    if (n.options.timeout.count() != 0)
      opts += fmt::format(" timeout={:.3f}s", std::chrono::duration<double>(n.options.timeout).count());
    out += fmt::format("  {}{}({}) -> {}{}  [id {}{}]\n", kind_label(n.kind), n.name, inputs, n.output_type, opts,
                       n.identity.hex().substr(0, 12), n.cacheable ? "" : ", not cacheable");
  }
  return out;
}

}  // namespace penstock::detail::r1
