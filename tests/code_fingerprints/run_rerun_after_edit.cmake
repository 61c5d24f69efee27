# cmake -P script behind code_fingerprints.rerun_after_edit (see CMakeLists.txt
# here). Copies rerun_project/ into WORK, configures it against this source
# tree with add_subdirectory, and drives the pipeline report(train(load())) +
# other, each step written in its own file, through the step cache (a fresh
# PENSTOCK_HOME under WORK), reusing one build tree:
#   1. build, run: every step computed; run again: every step cached
#   2. change what fit() in train.cpp returns, `cmake --build` (no
#      reconfigure): `explain` says train misses with "code changed:
#      <train.cpp>"; run: train and report computed, load and other cached,
#      and the output changed
#   3. refactor fit() so its text changes but its result does not, rebuild:
#      run: train computed, report cached (early cutoff), load and other cached
#   4. put train.cpp back as it was at 2, rebuild: everything cached (the key
#      depends on the file's content, not on when it was built)
# No .version() is touched anywhere.
# Arguments: -DPROJECT -DWORK -DGENERATOR -DCXX_COMPILER -DBUILD_TYPE -DPENSTOCK_SOURCE_DIR
cmake_minimum_required(VERSION 3.25)

set(steps load train report other)
set(source ${WORK}/source)
set(binary ${WORK}/build)
file(REMOVE_RECURSE ${WORK})
file(COPY ${PROJECT}/ DESTINATION ${source})
# The cache of this test only; runs start from ${WORK}, so ./.penstock would be there too.
set(ENV{PENSTOCK_HOME} ${WORK}/home)

function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "+ ${shown}")
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}):\n${out}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# Builds; fails if CMake reran (editing a source must not need a reconfigure).
function(build)
  run(${CMAKE_COMMAND} --build ${binary} --parallel 2)
  if(out MATCHES "Re-running CMake|-- Configuring done")
    message(FATAL_ERROR "the build reran CMake:\n${out}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# `app run` (stderr is a pipe, so it prints one line per step). <label> names
# the run in messages; COMPUTED and CACHED list the steps expected to run and
# to come from the cache. Sets <label>_value to what it printed for report.
function(run_pipeline label)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "COMPUTED;CACHED")
  message(STATUS "+ app run  (${label})")
  execute_process(COMMAND ${binary}/app run WORKING_DIRECTORY ${WORK}
    RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  set(shown "stdout:\n${stdout}stderr:\n${stderr}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${label}: `app run` failed (${rc}):\n${shown}")
  endif()
  set(wrong "")
  foreach(step IN LISTS steps)
    string(REGEX MATCHALL "\\[fp\\] ${step} (cached|succeeded in)" lines "${stderr}")
    list(LENGTH lines count)
    if(step IN_LIST arg_COMPUTED)
      set(expected "[fp] ${step} succeeded in")
    else()
      set(expected "[fp] ${step} cached")
    endif()
    if(NOT count EQUAL 1 OR NOT lines STREQUAL expected)
      list(APPEND wrong "${step}: expected one '${expected} ...' line")
    endif()
  endforeach()
  list(LENGTH arg_CACHED hits)
  list(LENGTH steps total)
  if(hits EQUAL 0)
    set(summary "pipeline 'fp': ${total} succeeded in ")
  else()
    set(summary "pipeline 'fp': ${total} succeeded (${hits} from cache) in ")
  endif()
  string(FIND "${stderr}" "${summary}" at)
  if(at EQUAL -1)
    list(APPEND wrong "expected the summary '${summary}...'")
  endif()
  if(wrong)
    list(JOIN wrong "\n  " wrong)
    list(JOIN arg_COMPUTED ", " computed)
    list(JOIN arg_CACHED ", " cached)
    message(FATAL_ERROR "${label}: expected computed: ${computed}; cached: ${cached}; but:\n  ${wrong}\n${shown}")
  endif()
  if(NOT stdout MATCHES "(^|\n)report = \"([^\n]*)\"\n")
    message(FATAL_ERROR "${label}: `app run` printed no value for report:\n${shown}")
  endif()
  set(${label}_value "${CMAKE_MATCH_2}" PARENT_SCOPE)
  string(STRIP "${stderr}" stderr)
  message(STATUS "${label}: ${stderr}")
endfunction()

# `app explain`: each step in HITS must be a HIT, each <step> <reason> pair
# in MISSES a MISS whose reason starts with <reason>.
function(explain label)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "HITS;MISSES")
  run(${binary}/app explain)
  set(wrong "")
  foreach(step IN LISTS arg_HITS)
    if(NOT out MATCHES "(^|\n)${step} +HIT *\n")
      list(APPEND wrong "${step}: expected HIT")
    endif()
  endforeach()
  while(arg_MISSES)
    list(POP_FRONT arg_MISSES step reason)
    set(given "")
    if(out MATCHES "(^|\n)${step} +MISS +([^\n]*)\n")
      string(FIND "${CMAKE_MATCH_2}" "${reason}" given)
    endif()
    if(NOT given EQUAL 0)
      list(APPEND wrong "${step}: expected MISS  ${reason}...")
    endif()
  endwhile()
  if(wrong)
    list(JOIN wrong "\n  " wrong)
    message(FATAL_ERROR "${label}: `app explain` did not say what was expected:\n  ${wrong}\n${out}")
  endif()
  string(STRIP "${out}" out)
  message(STATUS "${label}:\n${out}")
endfunction()

# Replaces <from>, which must occur exactly once, with <to> in train.cpp.
function(edit_train from to)
  file(READ ${source}/train.cpp text)
  string(FIND "${text}" "${from}" first)
  string(FIND "${text}" "${from}" last REVERSE)
  if(first EQUAL -1 OR NOT first EQUAL last)
    message(FATAL_ERROR "cannot edit train.cpp: '${from}' is not in it exactly once:\n${text}")
  endif()
  string(REPLACE "${from}" "${to}" edited "${text}")
  file(WRITE ${source}/train.cpp "${edited}")
endfunction()

set(configure ${CMAKE_COMMAND} -S ${source} -B ${binary} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DPENSTOCK_SOURCE_DIR=${PENSTOCK_SOURCE_DIR})
if(BUILD_TYPE)
  list(APPEND configure -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
run(${configure})
build()

# 1. A fresh cache: everything computed; then everything cached.
run_pipeline(first COMPUTED ${steps})
run_pipeline(second CACHED ${steps})

# 2. Change what train computes. The build fingerprints the sources again and
#    recompiles train.cpp; nothing else of the project is touched.
edit_train("return sum * 2.0;" "return sum * 3.0;")
build()
if(NOT out MATCHES "Fingerprinting the source files of app")
  message(FATAL_ERROR "train.cpp changed, but app's sources were not fingerprinted again:\n${out}")
endif()
explain(edited HITS load other MISSES train "code changed: ${source}/train.cpp" report "input from step 'train' is recomputed first")
run_pipeline(edited COMPUTED train report CACHED load other)
if(edited_value STREQUAL first_value)
  message(FATAL_ERROR "train.cpp now multiplies by 3, but report still says '${edited_value}'")
endif()
message(STATUS "report was '${first_value}', is '${edited_value}'")

# 3. Change train.cpp's text but not train's output: train reruns, and
#    report is a hit after all (early cutoff on train's output digest).
edit_train("  return sum * 3.0;\n" "  const double scale = 3.0;\n  return scale * sum;\n")
build()
explain(refactored HITS load other MISSES train "code changed: ${source}/train.cpp" report "input from step 'train' is recomputed first")
run_pipeline(refactored COMPUTED train CACHED load report other)
if(NOT refactored_value STREQUAL edited_value)
  message(FATAL_ERROR "the refactoring changed report from '${edited_value}' to '${refactored_value}'")
endif()

# 4. Undo the refactoring: train.cpp has the content it had at 2 again, so its
#    key is that run's key and nothing reruns.
edit_train("  const double scale = 3.0;\n  return scale * sum;\n" "  return sum * 3.0;\n")
build()
explain(undone HITS ${steps})
run_pipeline(undone CACHED ${steps})
message(STATUS "editing train.cpp reran train (and report when train's output changed) and nothing else")
