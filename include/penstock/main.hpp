// ps::main(pipeline, argc, argv): the command line every pipeline binary
// shares: `run` (--param, --threads, --quiet), `graph --format dot|mermaid`,
// and `describe`. The interface itself lives in the compiled runtime.
#pragma once

#include <penstock/detail/runtime_api.hpp>
#include <penstock/pipeline.hpp>

namespace penstock {

template <fixed_string Name>
int main(const typed_pipeline<Name>& pipeline, int argc, const char* const* argv) {
  return detail::r1::main(pipeline.description(), argc, argv);
}

// A pipeline whose construction already failed to compile.
template <fixed_string Name>
int main(const error_pipeline<Name>&, int, const char* const*) {
  return 1;
}

}  // namespace penstock
