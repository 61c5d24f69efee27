// indexed_name<'c', I>(): a distinct compile-time step name ("c0", "c1", …
// "c999") for generated pipelines, which need one name per step. Built from
// the index at compile time as a penstock::fixed_string.
#pragma once

#include <cstddef>

#include <penstock/fixed_string.hpp>

namespace penstock_bench {

constexpr std::size_t decimal_digits(std::size_t v) {
  std::size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

// The prefix, then the decimal digits of I, then the terminating NUL.
template <char Prefix, std::size_t I>
constexpr auto indexed_name() {
  constexpr std::size_t digits = decimal_digits(I);
  char text[digits + 2]{};
  text[0] = Prefix;
  std::size_t v = I;
  for (std::size_t d = digits; d != 0; --d) {
    text[d] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  return penstock::fixed_string<digits + 2>(text);
}

static_assert(indexed_name<'c', 0>().view() == "c0");
static_assert(indexed_name<'c', 907>().view() == "c907");

}  // namespace penstock_bench
