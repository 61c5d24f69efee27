// ps::map<"name">(callable)(vector_node): apply a callable to every element of
// a node<std::vector<T>>. One node in the pipeline's type, one task per element
// at run time (parallel, in order in the result, each element retried on its
// own). The result is a node<std::vector<U>>.
#pragma once

#include <memory>
#include <source_location>
#include <type_traits>
#include <utility>
#include <vector>

#include <penstock/detail/arguments.hpp>
#include <penstock/detail/option_setters.hpp>
#include <penstock/detail/step_instance.hpp>
#include <penstock/error.hpp>
#include <penstock/node.hpp>
#include <penstock/options.hpp>
#include <penstock/step.hpp>
#include <penstock/value_traits.hpp>

namespace penstock {

namespace detail {
template <class V>
struct vector_element {};
template <class E, class A>
struct vector_element<std::vector<E, A>> {
  using type = E;
};
template <class V>
concept std_vector = requires {
  typename vector_element<V>::type;
};
}  // namespace detail

template <fixed_string Name, class F, cache_policy Cache = cache_policy::normal>
class map_definition : public detail::option_setters<map_definition<Name, F, Cache>> {
  friend class detail::option_setters<map_definition>;
  template <fixed_string, class, cache_policy>
  friend class map_definition;

 public:
  static constexpr auto name = Name;

  explicit map_definition(F fn, step_options options = {}) : fn_(std::move(fn)) {
    this->options_ = options;
    this->options_.cache = Cache;
  }

  // No element and no result of this map is ever stored: see step_definition::cache.
  [[nodiscard]] map_definition<Name, F, cache_policy::never> cache(never_t) const {
    return map_definition<Name, F, cache_policy::never>(fn_, this->options_);
  }

  [[nodiscard]] error_node operator()(const error_node&) const { return {}; }

  template <class T, class G, class P>
  [[nodiscard]] auto operator()(const node<T, G, P>& input) const {
    if constexpr (!detail::std_vector<T>) {
      (void)detail::report<error::map_input_not_a_vector<Name, T>>();
      return error_node{};
    } else {
      using element = typename detail::vector_element<T>::type;
      if constexpr (detail::known_signature_v<F> && detail::takes_gpu_context<F>()) {
        (void)detail::report<error::gpu_context_in_cpu_step<Name, F>>();
        return error_node{};
      } else if constexpr (detail::known_signature_v<F>) {
        constexpr std::size_t arity = detail::data_arity<F>();
        if constexpr (arity != 1) {
          (void)detail::report<error::step_argument_count_mismatch<Name, arity, 1>>();
          return error_node{};
        } else if constexpr (!std::is_same_v<std::remove_cvref_t<detail::data_param_t<F, 0>>, element>) {
          (void)detail::report<error::step_argument_mismatch<Name, 0, detail::data_param_t<F, 0>, element>>();
          return error_node{};
        } else {
          return apply<detail::takes_context<F>(), typename detail::callable_traits<F>::result>(input);
        }
      } else if constexpr (std::is_invocable_v<const F&, context&, const element&>) {
        return apply<true, std::invoke_result_t<const F&, context&, const element&>>(input);
      } else if constexpr (std::is_invocable_v<const F&, const element&>) {
        return apply<false, std::invoke_result_t<const F&, const element&>>(input);
      } else {
        (void)detail::report<error::step_not_invocable_with<Name, element>>();
        return error_node{};
      }
    }
  }

 private:
  template <bool WithContext, class Result, class T, class G, class P>
  auto apply(const node<T, G, P>& input) const {
    if constexpr (std::is_void_v<Result>) {
      (void)detail::report<error::step_returns_void<Name, F>>();
      return error_node{};
    } else if constexpr (Cache == cache_policy::normal &&
                         !value_traits<std::vector<std::remove_cvref_t<Result>>>::cacheable) {
      (void)detail::report<error::step_output_not_serializable<Name, std::remove_cvref_t<Result>>>();
      return error_node{};
    } else {
      using R = std::remove_cvref_t<Result>;
      using input_arg = typename detail::traits_of<node<T, G, P>>::template kind<T>;
      using self = detail::map_instance<R, input_arg>;
      return node<std::vector<R>, detail::produced_by<Name, std::vector<R>>>(
          std::make_shared<const self>(Name.view(), this->options_, detail::erase_callable(fn_),
                                       &self::template run<F, WithContext>, input.producer()));
    }
  }

  F fn_;
};

template <fixed_string Name, class F>
[[nodiscard]] map_definition<Name, std::decay_t<F>> map(F&& fn,
                                                        std::source_location where = std::source_location::current()) {
  return map_definition<Name, std::decay_t<F>>(
      std::forward<F>(fn), step_options{.source_file = where.file_name(), .source_line = where.line()});
}

}  // namespace penstock
