// ps::param<T>("name") and ps::param<T>("name", default): a typed pipeline
// parameter. Its value comes from code (the default) or from the command line
// (`run --param name=value`); a malformed or missing value is an error that
// names the parameter and its type, raised before any step runs. A
// floating-point parameter refuses nan and inf from the command line unless
// declared .allow_non_finite().
#pragma once

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <penstock/detail/parse_value.hpp>
#include <penstock/detail/slot.hpp>
#include <penstock/detail/type_name.hpp>
#include <penstock/graph_description.hpp>

namespace penstock {

namespace detail {
template <class T>
struct param_state {
  std::string name;
  std::optional<T> default_value;
  bool allow_non_finite = false;
};

// Reads a parameter's value from the command line. std::from_chars takes
// "nan", "inf" and "infinity" in any case: a typo'd or scripted value would
// then reach every step (and its cache key) as a NaN, so a floating-point
// parameter takes them only when declared to. A non-finite default written in
// code is the author's choice and is not checked.
template <class T, bool AllowNonFinite>
void parse_param(void* slot, std::string_view text) {
  T value = parse_value<T>(text);
  if constexpr (std::is_floating_point_v<T> && !AllowNonFinite) {
    if (!std::isfinite(value)) {
      throw std::invalid_argument(std::string("not a finite number (")
                                      .append(std::isnan(value) ? "nan"
                                              : value > 0       ? "inf"
                                                                : "-inf")
                                      .append("); declare the parameter .allow_non_finite() to accept it"));
    }
  }
  static_cast<std::optional<T>*>(slot)->emplace(std::move(value));
}

}  // namespace detail

template <class T>
class param_node {
  static_assert(std::is_same_v<T, std::remove_cvref_t<T>>, "ps::param<T>: T must be a plain value type");

 public:
  using value_type = T;

  explicit param_node(std::string name) : state_(std::make_shared<detail::param_state<T>>()) {
    state_->name = std::move(name);
  }
  param_node(std::string name, T default_value) : param_node(std::move(name)) {
    state_->default_value = std::move(default_value);
  }

  [[nodiscard]] const std::string& name() const noexcept { return state_->name; }
  [[nodiscard]] const std::optional<T>& default_value() const noexcept { return state_->default_value; }

  // Lets the command line (and run_options::params) set this floating-point
  // parameter to nan, inf or -inf, which are refused otherwise. It marks the
  // parameter itself, so every handle to it sees the change; call it where the
  // parameter is declared, before a pipeline uses it:
  //   auto tolerance = ps::param<double>("tolerance", 1e-6).allow_non_finite();
  param_node& allow_non_finite() & requires std::is_floating_point_v<T> {
    state_->allow_non_finite = true;
    return *this;
  }
  [[nodiscard]] param_node allow_non_finite() && requires std::is_floating_point_v<T> {
    state_->allow_non_finite = true;
    return std::move(*this);
  }
  [[nodiscard]] bool allows_non_finite() const noexcept { return state_->allow_non_finite; }

  // Lowering: how the runtime creates, fills and parses this parameter's slot.
  [[nodiscard]] param_description describe() const {
    return {
        .name = state_->name,
        .type = detail::display_name<T>(),
        .has_default = state_->default_value.has_value(),
        .param = state_.get(),
        .slot = detail::slot_functions_for<T>(),
        .set_default =
            [](const void* param, void* slot) {
              const auto& p = *static_cast<const detail::param_state<T>*>(param);
              if (p.default_value) static_cast<std::optional<T>*>(slot)->emplace(*p.default_value);
            },
        .parse = state_->allow_non_finite ? &detail::parse_param<T, true> : &detail::parse_param<T, false>,
    };
  }

 private:
  std::shared_ptr<detail::param_state<T>> state_;
};

template <class T>
[[nodiscard]] param_node<T> param(std::string name) {
  return param_node<T>(std::move(name));
}

template <class T, class U>
requires std::is_constructible_v<T, U&&>
[[nodiscard]] param_node<T> param(std::string name, U&& default_value) {
  return param_node<T>(std::move(name), T(std::forward<U>(default_value)));
}

}  // namespace penstock
