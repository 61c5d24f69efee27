// parse_value<T>(text): how a parameter's value is read from the command line.
// Arithmetic types use std::from_chars (whole text, no trailing junk), bool
// accepts true/false/1/0/yes/no, strings are taken as they are, and any other
// type with an operator>> is read through a stream.
#pragma once

#include <charconv>
#include <concepts>
#include <istream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace penstock::detail {

template <class T>
concept stream_readable = requires(std::istream& in, T& value) {
  in >> value;
};

// A type that says how it is read from text (ps::file, ps::directory).
template <class T>
concept self_parsing = requires(std::string_view text) {
  { T::parse(text) } -> std::same_as<T>;
};

template <class T>
T parse_value(std::string_view text) {
  if constexpr (self_parsing<T>) {
    return T::parse(text);
  } else if constexpr (std::same_as<T, std::string>) {
    return std::string(text);
  } else if constexpr (std::same_as<T, bool>) {
    if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "0" || text == "no" || text == "off") return false;
    throw std::invalid_argument("expected true or false");
  } else if constexpr (std::is_arithmetic_v<T>) {
    T value{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec == std::errc::result_out_of_range) throw std::invalid_argument("value out of range");
    if (ec != std::errc{} || ptr != end || text.empty()) throw std::invalid_argument("not a number");
    return value;
  } else if constexpr (stream_readable<T>) {
    std::istringstream in{std::string(text)};
    T value{};
    if (!(in >> value) || !(in >> std::ws).eof()) throw std::invalid_argument("cannot be read");
    return value;
  } else {
    static_assert(stream_readable<T>, "a ps::param type must be arithmetic, std::string, or readable with operator>>");
    return T{};
  }
}

}  // namespace penstock::detail
