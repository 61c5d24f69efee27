// Whole files as strings, byte for byte: what the tests write as inputs and
// read back as outputs. Shared by the tests in tests/.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace penstock_test {

// Replaces the file's bytes with `text`.
inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The file's bytes; empty if it cannot be read.
inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace penstock_test
