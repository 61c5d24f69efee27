// ps::node<T, Producer, Projection>: the typed handle a step application
// returns. T is the value it carries; Producer names the step that makes it
// (detail::produced_by<"name", Output>), and Projection the part of that
// step's output it is. Its type is the same size however much of a pipeline
// lies upstream: the graph is collected once, by ps::pipeline, from the
// handles' pointers. ps::get splits a node whose value is a struct or tuple
// into typed nodes.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <penstock/detail/step_base.hpp>
#include <penstock/detail/step_instance.hpp>
#include <penstock/fixed_string.hpp>

namespace penstock {

namespace detail {
// The step a node comes from, as a node's type needs it: its name and the
// type of its whole output.
template <fixed_string Name, class Output>
struct produced_by {
  static constexpr auto step_name = Name;
  using output_type = Output;
};

// Applies Inner, then Outer: ps::get on a node that is already a projection.
// Its label is the whole path ("a.get<0>"): part of the consumer's identity,
// so get<0>(get<&S::a>(n)) and get<0>(get<&S::b>(n)) are keyed apart.
template <class Inner, class Outer>
struct composed_projection {
  static constexpr auto text = [] {
    constexpr std::string_view inner = Inner::label, outer = Outer::label;
    std::array<char, inner.size() + 1 + outer.size() + 1> out{};
    std::size_t n = 0;
    for (char c : inner) out[n++] = c;
    out[n++] = '.';
    for (char c : outer) out[n++] = c;
    return out;
  }();
  static constexpr std::string_view label{text.data(), text.size() - 1};
  template <class V>
  static constexpr auto& apply(V& v) noexcept {
    return Outer::apply(Inner::apply(v));
  }
};
template <class Inner, class Outer>
using compose_t = std::conditional_t<std::is_same_v<Inner, whole_value>, Outer, composed_projection<Inner, Outer>>;
}  // namespace detail

template <class T, class Producer, class Projection = detail::whole_value>
class node {
 public:
  using value_type = T;
  using projection_type = Projection;
  using producer_type = Producer;

  explicit node(std::shared_ptr<const detail::step_base> producer) : producer_(std::move(producer)) {}

  [[nodiscard]] const std::shared_ptr<const detail::step_base>& producer() const noexcept { return producer_; }
  [[nodiscard]] static constexpr std::string_view step_name() noexcept { return Producer::step_name.view(); }

 private:
  std::shared_ptr<const detail::step_base> producer_;
};

// What a step application returns when a compile-time check failed. The check
// has already reported the error; anything built on an error_node is an
// error_node too, so the user sees one error, not a cascade.
struct error_node {
  using value_type = void;
};

template <class N>
inline constexpr bool is_node_v = false;
template <class T, class G, class P>
inline constexpr bool is_node_v<node<T, G, P>> = true;

// ps::get<I>(n): element I of a node whose value is a tuple or pair.
template <std::size_t I, class T, class G, class P>
requires requires { typename std::tuple_element<I, T>::type; }
[[nodiscard]] auto get(const node<T, G, P>& n) {
  using element = std::remove_cvref_t<std::tuple_element_t<I, T>>;
  return node<element, G, detail::compose_t<P, detail::element_projection<I>>>(n.producer());
}

// ps::get<&Split::train>(n): one member of a node whose value is a struct.
template <auto Member, class T, class G, class P>
requires std::is_member_object_pointer_v<decltype(Member)> && requires(const T& v) { v.*Member; }
[[nodiscard]] auto get(const node<T, G, P>& n) {
  using member = std::remove_cvref_t<decltype(std::declval<const T&>().*Member)>;
  return node<member, G, detail::compose_t<P, detail::member_projection<Member>>>(n.producer());
}

template <std::size_t I>
[[nodiscard]] error_node get(const error_node&) {
  return {};
}
// Constrained like its node overload: for get<0>, `auto Member` would also
// match, and the call would be ambiguous (a second error after the first).
template <auto Member>
requires std::is_member_object_pointer_v<decltype(Member)>
[[nodiscard]] error_node get(const error_node&) { return {}; }

}  // namespace penstock
