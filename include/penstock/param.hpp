// ps::param<T>("name") and ps::param<T>("name", default): a typed pipeline
// parameter. Its value comes from code (the default) or from the command line
// (`run --param name=value`); a malformed or missing value is an error that
// names the parameter and its type, raised before any step runs.
#pragma once

#include <memory>
#include <optional>
#include <string>
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
};

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
        .parse =
            [](void* slot, std::string_view text) {
              static_cast<std::optional<T>*>(slot)->emplace(detail::parse_value<T>(text));
            },
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
