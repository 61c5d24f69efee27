# The build-time step of penstock_code_fingerprints() (penstockCodeFingerprints.cmake):
# hashes a target's source files and writes the C++ file that registers their
# digests with the runtime. The file is rewritten only when its content
# changes, so a build where no digest changed recompiles and relinks nothing.
# Usage: cmake -DINPUTS=<target>.inputs.cmake -DOUTPUT=<target>.cpp -P penstock_fingerprint_sources.cmake
# INPUTS (written at configure time) sets PENSTOCK_FP_TARGET, PENSTOCK_FP_SYMBOL
# and PENSTOCK_FP_SOURCES (absolute paths).
cmake_minimum_required(VERSION 3.25)

if(NOT INPUTS OR NOT OUTPUT)
  message(FATAL_ERROR "usage: cmake -DINPUTS=<file> -DOUTPUT=<file> -P ${CMAKE_CURRENT_LIST_FILE}")
endif()
include("${INPUTS}")

# The path as a C++ string literal's contents.
function(penstock_cxx_string text out)
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  string(REPLACE "\n" "\\n" text "${text}")
  string(REPLACE "\r" "\\r" text "${text}")
  string(REPLACE "\t" "\\t" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

set(rows "")
set(count 0)
foreach(path IN LISTS PENSTOCK_FP_SOURCES)
  if(NOT EXISTS "${path}" OR IS_DIRECTORY "${path}")
    # Removed since CMake last ran; the next configure drops it from the list.
    continue()
  endif()
  file(SHA256 "${path}" sha256)
  penstock_cxx_string("${path}" literal)
  string(APPEND rows "    {\"${literal}\", \"${sha256}\"},\n")
  math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
  # An empty array is not C++; the runtime skips a row without a path.
  set(rows "    {nullptr, nullptr},\n")
endif()

set(symbol "${PENSTOCK_FP_SYMBOL}")
set(content "// Generated at build time by penstock_code_fingerprints(${PENSTOCK_FP_TARGET}); do not edit.
// SHA-256 of each source file of the target, registered with the penstock
// runtime before main(), so that steps written in these files are keyed on
// their code.
#include <cstddef>

#include <penstock/detail/code_fingerprints.hpp>

// Referenced with --undefined (or -u, /INCLUDE) when the target is a static
// library, so that the linker keeps this object and its initializer.
extern \"C\" int ${symbol}() noexcept;
extern \"C\" int ${symbol}() noexcept { return ${count}; }

namespace {

constexpr penstock::detail::r1::source_fingerprint penstock_code_fingerprints_table[] = {
${rows}};

struct penstock_code_fingerprints_registration {
  penstock_code_fingerprints_registration() noexcept {
    penstock::detail::r1::register_source_fingerprints(
        penstock_code_fingerprints_table,
        sizeof penstock_code_fingerprints_table / sizeof penstock_code_fingerprints_table[0]);
  }
};
const penstock_code_fingerprints_registration penstock_code_fingerprints_registered;

}  // namespace
")

set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUTPUT}" "${content}")
endif()
