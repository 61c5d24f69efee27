// callable_traits<F>: the parameter and result types of a step's callable,
// when they can be known (free functions, function pointers, lambdas and
// function objects with one non-template operator()). Generic callables have
// `known == false` and are checked with std::is_invocable instead.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>

#include <penstock/context.hpp>

namespace penstock::detail {

template <class R, class... A>
struct signature {
  static constexpr bool known = true;
  using result = R;
  using params = std::tuple<A...>;
  static constexpr std::size_t arity = sizeof...(A);
};

template <class F, class = void>
struct callable_traits {
  static constexpr bool known = false;
};

#define PENSTOCK_DETAIL_SIGNATURE(QUALIFIERS)                                      \
  template <class R, class... A>                                                   \
  struct callable_traits<R(A...) QUALIFIERS> : signature<R, A...> {};              \
  template <class R, class... A>                                                   \
  struct callable_traits<R (*)(A...) QUALIFIERS> : signature<R, A...> {};          \
  template <class R, class C, class... A>                                          \
  struct callable_traits<R (C::*)(A...) QUALIFIERS> : signature<R, A...> {};       \
  template <class R, class C, class... A>                                          \
  struct callable_traits<R (C::*)(A...) const QUALIFIERS> : signature<R, A...> {}; \
  template <class R, class C, class... A>                                          \
  struct callable_traits<R (C::*)(A...) const & QUALIFIERS> : signature<R, A...> {};
PENSTOCK_DETAIL_SIGNATURE()
PENSTOCK_DETAIL_SIGNATURE(noexcept)
#undef PENSTOCK_DETAIL_SIGNATURE

template <class F>
struct callable_traits<F, std::void_t<decltype(&F::operator())>> : callable_traits<decltype(&F::operator())> {};

template <class F>
inline constexpr bool known_signature_v = callable_traits<F>::known;

// Whether the callable's first parameter is ps::context&.
template <class F>
constexpr bool takes_context() {
  if constexpr (!known_signature_v<F>) {
    return false;
  } else if constexpr (callable_traits<F>::arity == 0) {
    return false;
  } else {
    return std::is_same_v<std::tuple_element_t<0, typename callable_traits<F>::params>, context&>;
  }
}

// Parameter `I` after the optional leading context&.
template <class F, std::size_t I>
using data_param_t = std::tuple_element_t<I + (takes_context<F>() ? 1 : 0), typename callable_traits<F>::params>;

template <class F>
constexpr std::size_t data_arity() {
  return callable_traits<F>::arity - (takes_context<F>() ? 1 : 0);
}

}  // namespace penstock::detail
