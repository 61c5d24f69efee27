// The pipeline's structure as a type: graph<Steps...> lists every step a node
// depends on, in topological order, each step once. Applying a step merges
// its inputs' lists and appends itself, so the whole graph (node count,
// order, edges) is known at compile time and nothing is built at run time.
//
// Merging is flat, not recursive: a step is found by name through
// overload resolution on a class that derives from one tag per step, and the
// result is assembled with a fold. A chain of 1,000 steps therefore needs no
// template recursion 1,000 deep.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include <penstock/fixed_string.hpp>

namespace penstock::detail {

template <class... Steps>
struct graph {
  static constexpr std::size_t size = sizeof...(Steps);
};

template <class... A, class... B>
constexpr graph<A..., B...> operator+(graph<A...>, graph<B...>) {
  return {};
}

template <fixed_string Name, class Step>
struct name_tag {};

template <class... Steps>
struct name_index : name_tag<Steps::step_name, Steps>... {};

// The step named `Name` in a graph, or void.
template <fixed_string Name, class Step>
Step find_step(const name_tag<Name, Step>*);
template <fixed_string Name>
void find_step(const void*);

template <fixed_string Name, class Graph>
struct step_named;
template <fixed_string Name, class... Steps>
struct step_named<Name, graph<Steps...>> {
  using type = decltype(find_step<Name>(static_cast<const name_index<Steps...>*>(nullptr)));
};
template <fixed_string Name, class Graph>
using step_named_t = typename step_named<Name, Graph>::type;

// A merge that found two different steps with one name.
template <class First, class Second>
struct name_conflict {
  using first = First;
  using second = Second;
};

template <class... C>
struct conflicts {
  static constexpr bool any = sizeof...(C) > 0;
};
template <class... A, class... B>
constexpr conflicts<A..., B...> operator+(conflicts<A...>, conflicts<B...>) {
  return {};
}

// For one candidate step: keep it, drop it (already present), or conflict.
template <class Existing, class Candidate>
struct merge_one {
  using keep = std::conditional_t<std::is_void_v<Existing>, graph<Candidate>, graph<>>;
  using conflict = std::conditional_t<std::is_void_v<Existing> || std::is_same_v<Existing, Candidate>, conflicts<>,
                                      conflicts<name_conflict<Existing, Candidate>>>;
};

template <class Into, class From>
struct merge;
template <class... A, class... B>
struct merge<graph<A...>, graph<B...>> {
  using index = name_index<A...>;
  template <class S>
  using one = merge_one<decltype(find_step<S::step_name>(static_cast<const index*>(nullptr))), S>;
  using type = decltype((graph<A...>{} + ... + typename one<B>::keep{}));
  using conflict = decltype((conflicts<>{} + ... + typename one<B>::conflict{}));
};

// Merges any number of graphs left to right. Within one graph names are
// unique, so only the graphs after the first can conflict.
template <class... Graphs>
struct merge_all;
template <>
struct merge_all<> {
  using type = graph<>;
  using conflict = conflicts<>;
};
template <class G>
struct merge_all<G> {
  using type = G;
  using conflict = conflicts<>;
};
template <class G1, class G2, class... Rest>
struct merge_all<G1, G2, Rest...> {
  using head = merge<G1, G2>;
  using tail = merge_all<typename head::type, Rest...>;
  using type = typename tail::type;
  using conflict = decltype(typename head::conflict{} + typename tail::conflict{});
};

template <class C>
struct first_conflict;
template <class C, class... Rest>
struct first_conflict<conflicts<C, Rest...>> {
  using type = C;
};

// Position of the step named `name` in the graph's topological order.
template <class... Steps>
constexpr std::uint32_t index_of(graph<Steps...>, std::string_view name) {
  constexpr std::array<std::string_view, sizeof...(Steps)> names{Steps::step_name.view()...};
  for (std::uint32_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return i;
  return static_cast<std::uint32_t>(-1);
}

}  // namespace penstock::detail
