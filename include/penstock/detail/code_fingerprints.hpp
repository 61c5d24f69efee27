// Code fingerprints: build-time digests of source files, so a step's cache key
// changes when the file in which its ps::step<...>(...) is written changes.
// penstock_code_fingerprints(<target>) (cmake/penstockCodeFingerprints.cmake)
// generates a table per target that registers itself here at static
// initialization; the runtime looks a step's source file up by path.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <penstock/digest.hpp>

namespace penstock::detail::r1 {

// One row of a generated table: a source file's absolute path as CMake passes
// it to the compiler (so it equals std::source_location::file_name() in that
// file), and the SHA-256 of its contents at build time, as 64 hex digits.
struct source_fingerprint {
  const char* path;
  const char* sha256_hex;
};

// Called by the generated file's static initializer; thread-safe. The table
// must have static storage (the rows are copied all the same, so a library
// that is unloaded later leaves nothing dangling). A row without a path is skipped (the generated
// table of a target whose files all vanished is one such row); a row whose
// sha256_hex is not 64 hex digits is skipped, and said as a warning of every
// run (refused_source_fingerprints()).
// Terminates only if memory runs out.
void register_source_fingerprints(const source_fingerprint* table, std::size_t count) noexcept;

// The digest of the file's contents at build time, if a target registered it;
// std::nullopt otherwise. The digest is the first 128 bits of the SHA-256
// (high word first), so digest::hex() is the first 32 digits that
// `sha256sum <file>` prints. Paths compare after lexical normalization
// ("a/./b.cpp" matches "a/b.cpp"), symlinks are not resolved. A path
// registered with different digests (e.g. an executable and a shared library
// built from different versions of one file) yields the XXH3-128 of its
// distinct digests in order, so a change to any of them changes the result.
[[nodiscard]] std::optional<penstock::digest> source_fingerprint_of(std::string_view path) noexcept;

// What register_source_fingerprints refused, a sentence a row, in order:
// each run says them as warnings (a static initializer has nobody to tell).
[[nodiscard]] std::vector<std::string> refused_source_fingerprints();

}  // namespace penstock::detail::r1
