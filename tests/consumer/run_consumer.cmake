# cmake -P script behind the consumer.* tests (see CMakeLists.txt here).
#   MODE=install: -DMAIN_BINARY_DIR -DPREFIX: build the runtime, install into PREFIX.
#   MODE=find_package|find_package_gpu|add_subdirectory|fetch_content: -DSOURCE -DBINARY
#     -DGENERATOR -DCXX_COMPILER -DBUILD_TYPE -DPENSTOCK_SOURCE_DIR
#     -DEXPECT_VERSION [-DPREFIX]: configure, build and run the consumer.
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

if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} --build ${MAIN_BINARY_DIR} --target penstock_runtime)
  file(REMOVE_RECURSE ${PREFIX})
  run(${CMAKE_COMMAND} --install ${MAIN_BINARY_DIR} --prefix ${PREFIX})
  # The package and both exported names are there.
  file(GLOB config ${PREFIX}/lib*/cmake/penstock/penstockConfig.cmake)
  file(GLOB targets ${PREFIX}/lib*/cmake/penstock/penstockTargets.cmake)
  if(NOT config OR NOT targets OR NOT EXISTS ${PREFIX}/include/penstock/version.hpp)
    message(FATAL_ERROR "incomplete install in ${PREFIX}")
  endif()
  file(READ ${targets} exported)
  foreach(name penstock::penstock penstock::runtime)
    if(NOT exported MATCHES "add_library\\(${name} ")
      message(FATAL_ERROR "${targets} does not define ${name}")
    endif()
  endforeach()
  message(STATUS "installed into ${PREFIX}")
  return()
endif()

set(configure ${CMAKE_COMMAND} --fresh -S ${SOURCE} -B ${BINARY} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
if(BUILD_TYPE)
  list(APPEND configure -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
if(MODE MATCHES "^find_package")
  list(APPEND configure -DCMAKE_PREFIX_PATH=${PREFIX})
else()
  list(APPEND configure -DPENSTOCK_SOURCE_DIR=${PENSTOCK_SOURCE_DIR})
endif()
run(${configure})
run(${CMAKE_COMMAND} --build ${BINARY} --parallel 2)

# The pipeline runs and prints its one output; the version is the project's.
run(${BINARY}/consumer run --param n=10 --quiet)
if(NOT out STREQUAL "sum = 55\n")
  message(FATAL_ERROR "consumer run printed:\n${out}\nexpected: sum = 55")
endif()
run(${BINARY}/consumer --version)
if(NOT out STREQUAL "penstock ${EXPECT_VERSION}\n")
  message(FATAL_ERROR "consumer --version printed:\n${out}\nexpected: penstock ${EXPECT_VERSION}")
endif()
message(STATUS "${MODE}: sum = 55, penstock ${EXPECT_VERSION}")
