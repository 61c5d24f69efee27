// format_value(v): the short printable form of a step's output shown by
// `run` ("evaluate = 0.9467"); empty for types with no operator<<. Vectors show
// their size, so a million-element output never floods the terminal.
#pragma once

#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace penstock::detail {

template <class T>
concept stream_writable = requires(std::ostream& out, const T& value) {
  out << value;
};

template <class T>
std::string format_value(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return value.size() <= 80 ? '"' + value + '"' : '"' + value.substr(0, 77) + "...\"";
  } else if constexpr (stream_writable<T>) {
    std::ostringstream out;
    out << value;
    return out.str();
  } else if constexpr (requires {
                         value.size();
                         value.begin();
                       }) {
    // Appended, not "[" + std::to_string(...): g++ 12 -O2 warns falsely
    // (-Wrestrict) on that expression in every user's build.
    std::string text(1, '[');
    text.append(std::to_string(value.size())).append(" elements]");
    return text;
  } else {
    return {};
  }
}

}  // namespace penstock::detail
