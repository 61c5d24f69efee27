// text_file: writes a whole file the runtime produces for people (a trace,
// a plot, a page) through a temporary file and a rename, so that a reader
// never sees half of one. Private to the runtime.
#pragma once

#include <filesystem>
#include <string_view>

namespace penstock::detail::r1 {

// Throws std::runtime_error "cannot write the <what> <file>: <why>".
void write_text_file(const std::filesystem::path& file, std::string_view text, std::string_view what);

}  // namespace penstock::detail::r1
