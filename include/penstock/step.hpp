// ps::step<"name">(callable): a named, typed pipeline step. Applied to nodes,
// parameters and constants it returns a ps::node of the callable's result.
// Every application is checked at compile time; a mistake is reported once,
// as a penstock::error type naming the step, the position and the types.
#pragma once

#include <cstddef>
#include <memory>
#include <source_location>
#include <type_traits>
#include <utility>

#include <penstock/detail/arguments.hpp>
#include <penstock/detail/callable_traits.hpp>
#include <penstock/detail/option_setters.hpp>
#include <penstock/detail/step_instance.hpp>
#include <penstock/error.hpp>
#include <penstock/gpu_context.hpp>
#include <penstock/node.hpp>
#include <penstock/options.hpp>
#include <penstock/value_traits.hpp>

namespace penstock {

template <fixed_string Name, class F, cache_policy Cache = cache_policy::normal, placement Where = placement::cpu>
class step_definition : public detail::option_setters<step_definition<Name, F, Cache, Where>> {
  friend class detail::option_setters<step_definition>;
  template <fixed_string, class, cache_policy, placement>
  friend class step_definition;

 public:
  static constexpr auto name = Name;

  explicit step_definition(F fn, step_options options = {}) : fn_(std::move(fn)) {
    this->options_ = options;
    this->options_.cache = Cache;
    this->options_.where = Where;
  }

  // The step always runs and its output is never stored (non-deterministic
  // steps, outputs that cannot be serialized).
  [[nodiscard]] step_definition<Name, F, cache_policy::never, Where> cache(never_t) const {
    return step_definition<Name, F, cache_policy::never, Where>(fn_, this->options_);
  }

  // The step runs on the run's GPU backend: its callable takes
  // ps::gpu_context& first, and ps::device_vector<T> parameters, which accept
  // nodes of std::vector<T> (the runtime copies them to the device).
  [[nodiscard]] step_definition<Name, F, Cache, placement::gpu> on(gpu_t) const {
    return step_definition<Name, F, Cache, placement::gpu>(fn_, this->options_);
  }

  // What a GPU step runs instead when its code needs a CUDA device and the run
  // has none: `cpu_fn` takes the same parameters (ps::gpu_context& first; its
  // device_vector inputs are then in host memory) and returns the same type.
  template <class G>
  [[nodiscard]] auto fallback(G cpu_fn) const {
    static_assert(Where == placement::gpu, "only a GPU step (.on(ps::gpu)) has a CPU fallback");
    using both = detail::with_fallback<F, G>;
    if constexpr (detail::known_signature_v<F> && !detail::fallback_fits<F, G>()) {
      (void)detail::report<error::gpu_fallback_signature_mismatch<Name, F, G>>();
      return *this;  // reported once; the step goes on without the fallback
    } else {
      return step_definition<Name, both, Cache, Where>(both{fn_, std::move(cpu_fn)}, this->options_);
    }
  }

  template <class... Args>
  [[nodiscard]] auto operator()(Args&&... args) const {
    if constexpr ((detail::is_error_v<Args> || ...)) {
      return error_node{};
    } else if constexpr (detail::known_signature_v<F> && Where == placement::gpu && !detail::takes_gpu_context<F>()) {
      (void)detail::report<error::gpu_step_without_gpu_context<Name, F>>();
      return error_node{};
    } else if constexpr (detail::known_signature_v<F> && Where == placement::cpu && detail::takes_gpu_context<F>()) {
      (void)detail::report<error::gpu_context_in_cpu_step<Name, F>>();
      return error_node{};
    } else if constexpr (detail::known_signature_v<F>) {
      constexpr std::size_t arity = detail::data_arity<F>();
      if constexpr (arity != sizeof...(Args)) {
        (void)detail::report<error::step_argument_count_mismatch<Name, arity, sizeof...(Args)>>();
        return error_node{};
      } else if constexpr (constexpr std::size_t bad = detail::first_mismatch<F, Where, Args...>();
                           bad < sizeof...(Args)) {
        using given = typename detail::traits_of<std::tuple_element_t<bad, std::tuple<Args...>>>::given;
        (void)detail::report<error::step_argument_mismatch<Name, bad, detail::data_param_t<F, bad>, given>>();
        return error_node{};
      } else {
        return apply<detail::context_params<F> != 0, typename detail::callable_traits<F>::result>(
            std::index_sequence_for<Args...>{}, std::forward<Args>(args)...);
      }
    } else if constexpr (!detail::invocable_with<F, Where, Args...>()) {
      (void)detail::report<error::step_not_invocable_with<Name, typename detail::traits_of<Args>::given...>>();
      return error_node{};
    } else {
      constexpr bool with_context = Where == placement::gpu || detail::generic_takes_context<F, Args...>();
      // The lambda's body is instantiated (it is not an unevaluated operand),
      // so it names the result type through invoke_result_t, never declval.
      using result = typename decltype([]<class... G>(std::type_identity<G>...) {
        if constexpr (Where == placement::gpu) {
          return std::type_identity<std::invoke_result_t<const F&, gpu_context&, const G&...>>{};
        } else if constexpr (with_context) {
          return std::type_identity<std::invoke_result_t<const F&, context&, const G&...>>{};
        } else {
          return std::type_identity<std::invoke_result_t<const F&, const G&...>>{};
        }
      }(std::type_identity<typename detail::traits_of<Args>::given>{}...))::type;
      return apply<with_context, result>(std::index_sequence_for<Args...>{}, std::forward<Args>(args)...);
    }
  }

 private:
  template <bool WithContext, class Result, std::size_t... I, class... Args>
  auto apply(std::index_sequence<I...>, Args&&... args) const {
    if constexpr (std::is_void_v<Result>) {
      (void)detail::report<error::step_returns_void<Name, F>>();
      return error_node{};
    } else if constexpr (Cache == cache_policy::normal && !value_traits<std::remove_cvref_t<Result>>::cacheable) {
      (void)detail::report<error::step_output_not_serializable<Name, std::remove_cvref_t<Result>>>();
      return error_node{};
    } else {
      using R = std::remove_cvref_t<Result>;
      using self =
          detail::step_instance<R, Where,
                                typename detail::traits_of<Args>::template kind<detail::expected_t<F, I, Args>>...>;
      auto instance = std::make_shared<const self>(
          Name.view(), this->options_, detail::erase_callable(fn_), &self::template run<F, WithContext>,
          detail::traits_of<Args>::template store<detail::expected_t<F, I, Args>>(std::forward<Args>(args))...);
      return node<R, detail::produced_by<Name, R>>(std::move(instance));
    }
  }

  F fn_;
};

// `where` records the file and line this expression is written at: the
// file's content digest is the step's code fingerprint (see
// penstock_code_fingerprints in cmake/), and both name the step in errors.
template <fixed_string Name, class F>
[[nodiscard]] step_definition<Name, std::decay_t<F>> step(
    F&& fn, std::source_location where = std::source_location::current()) {
  return step_definition<Name, std::decay_t<F>>(
      std::forward<F>(fn), step_options{.source_file = where.file_name(), .source_line = where.line()});
}

}  // namespace penstock
