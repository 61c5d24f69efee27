// The pipeline's graph as text: Graphviz DOT and Mermaid flowcharts, for
// `graph --format dot|mermaid`. Parameters are drawn as ellipses feeding the
// steps that read them; a ps::get projection labels its edge.
#pragma once

#include <string>

#include <penstock/graph_description.hpp>

namespace penstock::detail::r1 {

std::string to_dot(const graph_description& graph);
std::string to_mermaid(const graph_description& graph);
// `describe`: parameters, then steps with their input and output types.
std::string describe(const graph_description& graph);

}  // namespace penstock::detail::r1
