# Runs a command twice and fails unless both runs succeed, print the same
# output, and that output matches EXPECT (a regular expression).
# Usage: cmake -DCOMMAND="prog;arg;..." -DEXPECT=regex -P run_example_twice.cmake
foreach(i 1 2)
  execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out${i} ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${i} exited with ${rc}:\n${out${i}}\n${err}")
  endif()
endforeach()
if(NOT out1 STREQUAL out2)
  message(FATAL_ERROR "two runs differ:\n${out1}\n---\n${out2}")
endif()
if(NOT out1 MATCHES "${EXPECT}")
  message(FATAL_ERROR "output does not match '${EXPECT}':\n${out1}")
endif()
message(STATUS "both runs printed: ${out1}")
