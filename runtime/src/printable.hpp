// printable(text): bytes as they can go into JSON, a run record and onto a
// terminal.
#pragma once

#include <string>
#include <string_view>

namespace penstock::detail::r1 {

// `text` as it can go into JSON and onto a terminal: valid UTF-8 is kept,
// every other byte becomes \xNN (a path or a string parameter need not be
// UTF-8; a run record must not fail for it).
[[nodiscard]] std::string printable(std::string_view text);

}  // namespace penstock::detail::r1
