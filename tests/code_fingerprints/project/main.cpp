// Prints, for alpha.cpp, beta.cpp and delta.cpp: the function's result, the
// fingerprint the registry holds for the file (or "none") and the file's path,
// as std::source_location gives it there (as ps::step will capture it).
#include <cstdio>
#include <optional>

#include <penstock/detail/code_fingerprints.hpp>

#include "parts.hpp"

namespace {
void print(const char* name, int value, const char* file) {
  const std::optional<penstock::digest> d = penstock::detail::r1::source_fingerprint_of(file);
  std::printf("%s %d %s %s\n", name, value, d ? d->hex().c_str() : "none", file);
}
}  // namespace

int main() {
  print("alpha", alpha(1), alpha_file());
  print("beta", beta(1), beta_file());
  print("delta", delta(1), delta_file());
}
