# Builds one must-not-compile target and checks how it fails: the build fails,
# g++ prints exactly one error and no warning (no cascade), that first error
# line matches EXPECT (the error type, the step, the position, the types), and
# the error is reported at the mistake: the source location g++ gives is a line
# of the `#if MISTAKE == N` block in SOURCE. Any failure prints
# "compile-fail check FAILED" (the test's FAIL_REGULAR_EXPRESSION); success
# prints the first error line (matched by its PASS_REGULAR_EXPRESSION).
# Usage: cmake -DBUILD_DIR=... -DTARGET=... -DSOURCE=... -DMISTAKE=N
#              -DEXPECT=<regex> -P check_first_error.cmake
foreach(var BUILD_DIR TARGET SOURCE MISTAKE EXPECT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compile-fail check FAILED: ${var} is not set")
  endif()
endforeach()

# Untranslated messages with plain quotes, whatever the caller's locale.
set(ENV{LC_ALL} C)
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
string(ASCII 27 escape)
string(REGEX REPLACE "${escape}\\[[0-9;]*[mK]" "" output "${output}")

# message(FATAL_ERROR) rewraps its text: print the report as it is, then stop.
function(fail reason)
  message("--- build output ---\n${output}--- end of build output ---\ncompile-fail check FAILED: ${TARGET}: ${reason}")
  message(FATAL_ERROR "compile-fail check FAILED")
endfunction()

if(result EQUAL 0)
  fail("it compiled; the mistake (MISTAKE=${MISTAKE}) must not")
endif()

# Lists split at ';', which diagnostics may quote: keep it out of the list.
string(REPLACE ";" "<semicolon>" text "${output}")
string(REGEX MATCHALL "[^\n]*: (fatal )?error: [^\n]*" errors "${text}")
string(REGEX MATCHALL "[^\n]*: warning: [^\n]*" warnings "${text}")
list(LENGTH errors error_count)
list(LENGTH warnings warning_count)
if(error_count EQUAL 0)
  fail("the build failed without a compiler error")
endif()
list(GET errors 0 first)
string(REPLACE "<semicolon>" ";" first "${first}")
if(NOT first MATCHES "${EXPECT}")
  fail("the first error line does not match\n  ${EXPECT}\nit is\n  ${first}")
endif()
if(NOT error_count EQUAL 1 OR NOT warning_count EQUAL 0)
  fail("one mistake gave ${error_count} errors and ${warning_count} warnings; expected one error (no cascade)")
endif()

# Where the mistake is: the lines between `#if/#elif MISTAKE == N` and the
# next #elif, #else or #endif.
file(STRINGS ${SOURCE} lines)
set(line_number 0)
set(first_line 0)
set(last_line 0)
foreach(line IN LISTS lines)
  math(EXPR line_number "${line_number} + 1")
  if(first_line AND NOT last_line AND line MATCHES "^#(elif|else|endif)")
    math(EXPR last_line "${line_number} - 1")
  elseif(line MATCHES "^#(if|elif) MISTAKE == ${MISTAKE}([^0-9]|$)")
    math(EXPR first_line "${line_number} + 1")
  endif()
endforeach()
if(NOT first_line OR NOT last_line)
  fail("${SOURCE} has no `#if MISTAKE == ${MISTAKE}` block")
endif()
# g++ names the user's line either in the error itself or as the innermost
# "required from here" of the instantiation that reported it.
get_filename_component(source_name ${SOURCE} NAME)
string(REGEX REPLACE "([.+])" "\\\\\\1" source_pattern "${source_name}")
if(NOT text MATCHES "${source_pattern}:([0-9]+):[0-9]+:(   required from here|  in .constexpr. expansion| error: )")
  fail("no error or 'required from here' points into ${source_name}")
endif()
set(reported_line ${CMAKE_MATCH_1})
if(reported_line LESS first_line OR reported_line GREATER last_line)
  fail("the error is reported at ${source_name}:${reported_line}, not at the mistake (lines ${first_line}-${last_line})")
endif()

message("first error: ${first}\nreported at: ${source_name}:${reported_line}")
