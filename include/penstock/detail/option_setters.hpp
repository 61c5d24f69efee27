// The option setters shared by ps::step and ps::map: .version(n),
// .retries(n), .timeout(d). Each returns a copy, so a step definition can be
// reused with different options.
#pragma once

#include <chrono>
#include <cstdint>

#include <penstock/options.hpp>

namespace penstock::detail {

template <class Derived>
class option_setters {
 public:
  [[nodiscard]] Derived version(std::uint32_t v) const {
    Derived copy = self();
    copy.options_.version = v;
    return copy;
  }
  [[nodiscard]] Derived retries(std::uint32_t n) const {
    Derived copy = self();
    copy.options_.retries = n;
    return copy;
  }
  template <class Rep, class Period>
  [[nodiscard]] Derived timeout(std::chrono::duration<Rep, Period> limit) const {
    Derived copy = self();
    copy.options_.timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(limit);
    return copy;
  }
  [[nodiscard]] const step_options& options() const noexcept { return options_; }

 protected:
  step_options options_;

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

}  // namespace penstock::detail
