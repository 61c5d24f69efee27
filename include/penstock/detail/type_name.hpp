// type_name<T>(): a readable, compile-time name for a type, used in graph
// descriptions, `describe` output and runtime error messages.
#pragma once

#include <string_view>

namespace penstock::detail {

template <class T>
[[nodiscard]] constexpr std::string_view type_name() noexcept {
#if defined(__clang__)
  constexpr std::string_view pretty = __PRETTY_FUNCTION__;
  constexpr std::string_view prefix = "[T = ";
  constexpr std::string_view suffix = "]";
#elif defined(__GNUC__)
  constexpr std::string_view pretty = __PRETTY_FUNCTION__;
  constexpr std::string_view prefix = "[with T = ";
  constexpr std::string_view suffix = "; std::string_view = std::basic_string_view<char>]";
#else
#error "penstock::detail::type_name supports gcc and clang"
#endif
  constexpr auto start = pretty.find(prefix) + prefix.size();
  constexpr auto end = pretty.rfind(suffix);
  return pretty.substr(start, end - start);
}

// std::string is spelled out by the compiler as basic_string<char, ...>;
// show users the name they wrote.
template <class T>
[[nodiscard]] constexpr std::string_view display_name() noexcept {
  constexpr std::string_view raw = type_name<T>();
  if constexpr (raw == "std::__cxx11::basic_string<char>" || raw == "std::basic_string<char>") {
    return "std::string";
  } else {
    return raw;
  }
}

}  // namespace penstock::detail
