// callable_traits<F>: the parameter and result types of a step's callable,
// when they can be known (free functions, function pointers, lambdas and
// function objects with one non-template operator()). Generic callables have
// `known == false` and are checked with std::is_invocable instead.
#pragma once

#include <concepts>
#include <cstddef>
#include <tuple>
#include <type_traits>

#include <penstock/context.hpp>

namespace penstock {
class gpu_context;
}

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

template <class F, class C>
constexpr bool first_param_is() {
  if constexpr (!known_signature_v<F>) {
    return false;
  } else if constexpr (callable_traits<F>::arity == 0) {
    return false;
  } else {
    return std::is_same_v<std::tuple_element_t<0, typename callable_traits<F>::params>, C>;
  }
}

// Whether the callable's first parameter is ps::context& (CPU steps) or
// ps::gpu_context& (GPU steps).
template <class F>
constexpr bool takes_context() {
  return first_param_is<F, context&>();
}
template <class F>
constexpr bool takes_gpu_context() {
  return first_param_is<F, gpu_context&>();
}
template <class F>
inline constexpr std::size_t context_params = takes_context<F>() || takes_gpu_context<F>() ? 1 : 0;

// Parameter `I` after the optional leading context.
template <class F, std::size_t I>
using data_param_t = std::tuple_element_t<I + context_params<F>, typename callable_traits<F>::params>;

template <class F>
constexpr std::size_t data_arity() {
  return callable_traits<F>::arity - context_params<F>;
}

// A GPU step's callable with its CPU fallback (.fallback(cpu_fn)): called
// like the GPU callable, whose signature it has; the runtime calls
// `fallback` when the run has no CUDA device for the GPU code.
template <class F, class G>
struct with_fallback {
  F gpu;
  G fallback;
  template <class... A>
  decltype(auto) operator()(A&&... args) const {
    return gpu(static_cast<A&&>(args)...);
  }
  friend bool operator==(const with_fallback& a,
                         const with_fallback& b) requires std::equality_comparable<F> && std::equality_comparable<G> {
    return a.gpu == b.gpu && a.fallback == b.fallback;
  }
};
template <class F, class G>
struct callable_traits<with_fallback<F, G>> : callable_traits<F> {};

// Whether a fallback `G` can be called like GPU callable `F` (known
// signature): with F's parameters, returning F's result type.
template <class F, class G, class Params = typename callable_traits<F>::params>
struct fallback_fits_t;
template <class F, class G, class... P>
struct fallback_fits_t<F, G, std::tuple<P...>>
    : std::bool_constant<std::is_invocable_r_v<typename callable_traits<F>::result, const G&, P...>> {};
template <class F, class G>
constexpr bool fallback_fits() {
  return fallback_fits_t<F, G>::value;
}

template <class F>
inline constexpr bool has_fallback_v = false;
template <class F, class G>
inline constexpr bool has_fallback_v<with_fallback<F, G>> = true;

}  // namespace penstock::detail
