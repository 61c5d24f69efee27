# cmake -P script behind the code_fingerprints.* tests (see CMakeLists.txt here).
# Copies project/ into WORK, configures it against this source tree with
# add_subdirectory, then:
#   MODE=edit: builds and runs; edits the body of one function at a time
#     (alpha.cpp in the executable, then beta.cpp in a static library), rebuilds
#     with `cmake --build` alone and checks that exactly that file's fingerprint
#     changed; then touches files without changing them and checks that nothing
#     changed and the generated files were not rewritten.
#   MODE=mistake -DMISTAKE=<case> -DEXPECT=<regex>: configuring must fail with
#     a message matching EXPECT.
# Other arguments: -DPROJECT -DWORK -DGENERATOR -DCXX_COMPILER -DBUILD_TYPE -DPENSTOCK_SOURCE_DIR
cmake_minimum_required(VERSION 3.25)

function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "+ ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}):\n${out}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

set(source ${WORK}/source)
set(binary ${WORK}/build)
file(REMOVE_RECURSE ${WORK})
file(COPY ${PROJECT}/ DESTINATION ${source})

set(configure ${CMAKE_COMMAND} -S ${source} -B ${binary} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DPENSTOCK_SOURCE_DIR=${PENSTOCK_SOURCE_DIR})
if(BUILD_TYPE)
  list(APPEND configure -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()

if(MODE STREQUAL "mistake")
  message(STATUS "+ configure with -DMISTAKE=${MISTAKE}")
  execute_process(COMMAND ${configure} -DMISTAKE=${MISTAKE} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "configuring with MISTAKE=${MISTAKE} succeeded:\n${out}")
  endif()
  string(REGEX REPLACE "[ \t]*\n[ \t]*" " " flat "${out}")  # CMake wraps long messages
  if(NOT flat MATCHES "${EXPECT}")
    message(FATAL_ERROR "configuring with MISTAKE=${MISTAKE} failed, but not with '${EXPECT}':\n${out}")
  endif()
  message(STATUS "MISTAKE=${MISTAKE} fails with: ${CMAKE_MATCH_0}")
  return()
endif()

# Builds; fails if CMake reran (editing a source must not need a reconfigure).
function(build)
  run(${CMAKE_COMMAND} --build ${binary} --parallel 2)
  if(out MATCHES "Re-running CMake|-- Configuring done")
    message(FATAL_ERROR "the build reran CMake:\n${out}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# Runs the app; sets <name>_value, <name>_digest and <name>_path for each file
# and checks that each digest is the first 128 bits of the file's SHA-256 now.
function(run_app)
  run(${binary}/app)
  set(output "${out}")
  foreach(name alpha beta delta)
    if(NOT output MATCHES "(^|\n)${name} ([0-9]+) ([0-9a-f]+|none) ([^\n]*)\n")
      message(FATAL_ERROR "app printed no line for ${name}:\n${output}")
    endif()
    set(value ${CMAKE_MATCH_2})
    set(digest ${CMAKE_MATCH_3})
    set(path ${CMAKE_MATCH_4})
    cmake_path(COMPARE "${path}" EQUAL "${source}/${name}.cpp" same)
    if(NOT same)
      message(FATAL_ERROR "${name}_file() is ${path}, expected ${source}/${name}.cpp")
    endif()
    if(digest STREQUAL "none")
      message(FATAL_ERROR "${name}.cpp has no fingerprint:\n${output}")
    endif()
    file(SHA256 ${source}/${name}.cpp sha256)
    string(SUBSTRING ${sha256} 0 32 expected)
    if(NOT digest STREQUAL expected)
      message(FATAL_ERROR "the fingerprint of ${name}.cpp is ${digest}, but its SHA-256 now starts ${expected}")
    endif()
    set(${name}_value ${value} PARENT_SCOPE)
    set(${name}_digest ${digest} PARENT_SCOPE)
  endforeach()
  message(STATUS "${output}")
endfunction()

# Replaces the body of <name>() in <name>.cpp.
function(edit name from to)
  file(READ ${source}/${name}.cpp text)
  string(REPLACE "{ return x + ${from}; }" "{ return x + ${to}; }" edited "${text}")
  if(edited STREQUAL text)
    message(FATAL_ERROR "cannot edit ${name}.cpp")
  endif()
  file(WRITE ${source}/${name}.cpp "${edited}")
endfunction()

# Checks that exactly <changed> has a new fingerprint and value since <before>.
function(expect_changed changed before)
  foreach(name alpha beta delta)
    if(name STREQUAL changed)
      if(${name}_digest STREQUAL ${before}_${name}_digest OR ${name}_value STREQUAL ${before}_${name}_value)
        message(FATAL_ERROR "${name}.cpp was edited, but its fingerprint or value did not change")
      endif()
    elseif(NOT ${name}_digest STREQUAL ${before}_${name}_digest OR NOT ${name}_value STREQUAL ${before}_${name}_value)
      message(FATAL_ERROR "${name}.cpp was not edited, but its fingerprint or value changed")
    endif()
  endforeach()
endfunction()

macro(remember label)
  foreach(name alpha beta delta)
    set(${label}_${name}_digest ${${name}_digest})
    set(${label}_${name}_value ${${name}_value})
  endforeach()
endmacro()

run(${configure})
build()
run_app()
remember(first)

# Edit the function in the executable's own source file.
edit(alpha 1 2)
build()
if(NOT out MATCHES "Fingerprinting the source files of app")
  message(FATAL_ERROR "alpha.cpp changed, but app's sources were not fingerprinted again:\n${out}")
endif()
run_app()
expect_changed(alpha first)
remember(second)
message(STATUS "editing alpha.cpp changed its fingerprint only")

# Edit the function in the static library: its table must still be linked in.
edit(beta 1 3)
build()
run_app()
expect_changed(beta second)
remember(third)
message(STATUS "editing beta.cpp changed its fingerprint only")

# Touch files without changing them: the fingerprints are computed again, but
# the generated files stay as they were, so nothing of them is recompiled.
set(generated ${binary}/penstock_code_fingerprints/app.cpp ${binary}/penstock_code_fingerprints/beta.cpp
  ${binary}/penstock_code_fingerprints/delta.cpp)
foreach(file IN LISTS generated)
  file(TIMESTAMP ${file} stamp_${file} "%s" UTC)
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 1.1)  # timestamps have one-second resolution
execute_process(COMMAND ${CMAKE_COMMAND} -E touch ${source}/alpha.cpp ${source}/beta.cpp ${source}/delta.cpp)
build()
foreach(target app beta delta)
  if(NOT out MATCHES "Fingerprinting the source files of ${target}")
    message(FATAL_ERROR "touching the sources of ${target} did not fingerprint them again:\n${out}")
  endif()
endforeach()
if(out MATCHES "penstock_code_fingerprints/[a-z]+\\.cpp\\.o")
  message(FATAL_ERROR "a generated file was recompiled though no file changed:\n${out}")
endif()
foreach(file IN LISTS generated)
  file(TIMESTAMP ${file} stamp "%s" UTC)
  if(NOT stamp STREQUAL stamp_${file})
    message(FATAL_ERROR "${file} was rewritten though no source changed")
  endif()
endforeach()
run_app()
expect_changed(none third)
message(STATUS "touching alpha.cpp, beta.cpp and delta.cpp changed nothing")
