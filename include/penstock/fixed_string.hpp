// fixed_string: a string literal usable as a template argument, so step and
// pipeline names live in types (ps::step<"train">) and reach compile errors.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace penstock {

template <std::size_t N>
struct fixed_string {
  char data[N]{};

  constexpr fixed_string(const char (&text)[N]) noexcept { std::copy_n(text, N, data); }

  [[nodiscard]] constexpr std::string_view view() const noexcept { return {data, N - 1}; }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return N - 1; }

  template <std::size_t M>
  [[nodiscard]] constexpr bool operator==(const fixed_string<M>& other) const noexcept {
    return view() == other.view();
  }
};

}  // namespace penstock
