// printable(): text made safe for JSON and a terminal (printable.hpp).
#include "printable.hpp"

#include <cstddef>
#include <string>

#include <fmt/format.h>

namespace penstock::detail::r1 {

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = bytes[i];
    // The length of a well-formed sequence starting here (RFC 3629: no
    // overlong forms, no surrogates, nothing above U+10FFFF), or 0.
    std::size_t len = 0;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
    }
    bool ok = len != 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) ok = (bytes[i + k] & 0xc0) == 0x80;
    if (ok && len == 3) {
      const unsigned char d = bytes[i + 1];
      ok = !(c == 0xe0 && d < 0xa0) && !(c == 0xed && d >= 0xa0);
    }
    if (ok && len == 4) {
      const unsigned char d = bytes[i + 1];
      ok = !(c == 0xf0 && d < 0x90) && !(c == 0xf4 && d >= 0x90);
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    }
  }
  return out;
}

}  // namespace penstock::detail::r1
