// How each argument of a step application is classified (node, parameter,
// constant), what type it gives the step, and how it is stored; and the
// compile-time checks that compare those types with the callable's.
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <penstock/detail/callable_traits.hpp>
#include <penstock/detail/gpu_arguments.hpp>
#include <penstock/detail/step_instance.hpp>
#include <penstock/node.hpp>
#include <penstock/param.hpp>

namespace penstock::detail {

template <class A>
struct argument_traits {  // a constant
  using given = std::decay_t<A>;
  static constexpr bool exact = false;  // constants convert, like any call
  template <class Expected>
  using kind = const_arg<Expected>;
  template <class Expected, class U>
  static Expected store(U&& a) {
    return Expected(std::forward<U>(a));
  }
};

template <class T, class G, class P>
struct argument_traits<node<T, G, P>> {
  using given = T;
  static constexpr bool exact = true;  // data dependencies must match exactly
  template <class Expected>
  using kind = node_arg<typename G::output_type, P, T>;
  template <class Expected, class U>
  static std::shared_ptr<const step_base> store(const U& n) {
    return n.producer();
  }
};

template <class T>
struct argument_traits<param_node<T>> {
  using given = T;
  static constexpr bool exact = true;
  template <class Expected>
  using kind = param_arg<T>;
  template <class Expected, class U>
  static param_node<T> store(const U& p) {
    return p;
  }
};

template <class A>
using traits_of = argument_traits<std::remove_cvref_t<A>>;

template <class A>
inline constexpr bool is_error_v = std::is_same_v<std::remove_cvref_t<A>, error_node>;

// The type a callable's parameter asks for, or the argument's own type for a
// generic callable.
template <class F, std::size_t I, class A>
struct expected_type {
  using type = typename traits_of<A>::given;
};
template <class F, std::size_t I, class A>
requires known_signature_v<F>
struct expected_type<F, I, A> {
  using type = std::remove_cvref_t<data_param_t<F, I>>;
};
template <class F, std::size_t I, class A>
using expected_t = typename expected_type<F, I, A>::type;

template <class Expected, class A, placement Where = placement::cpu>
constexpr bool argument_fits() {
  if constexpr (traits_of<A>::exact) {
    return std::is_same_v<Expected, typename traits_of<A>::given> ||
           crosses_device_edge<Where, Expected, typename traits_of<A>::given>();
  } else {
    return std::is_convertible_v<A&&, Expected>;
  }
}

// Index of the first argument whose type does not fit, or sizeof...(Args).
template <class F, placement Where, class... Args>
constexpr std::size_t first_mismatch() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    constexpr std::array<bool, sizeof...(Args) + 1> fits{argument_fits<expected_t<F, I, Args>, Args, Where>()...,
                                                         false};
    std::size_t i = 0;
    while (fits[i]) ++i;  // fits ends with false, so this stops at sizeof...(Args) at the latest
    return i;
  }
  (std::index_sequence_for<Args...>{});
}

template <class F, placement Where, class... Args>
constexpr bool invocable_with() {
  if constexpr (Where == placement::gpu) {
    return std::is_invocable_v<const F&, gpu_context&, const typename traits_of<Args>::given&...>;
  }
  if constexpr (takes_context<F>() || !known_signature_v<F>) {
    if constexpr (std::is_invocable_v<const F&, context&, const typename traits_of<Args>::given&...>) return true;
  }
  return std::is_invocable_v<const F&, const typename traits_of<Args>::given&...>;
}

template <class F, class... Args>
constexpr bool generic_takes_context() {
  return std::is_invocable_v<const F&, context&, const typename traits_of<Args>::given&...>;
}

}  // namespace penstock::detail
