# penstock::thrust_tbb inside this build (cmake/penstockThrust.cmake, which
# find_package(penstock) users get too). Sets PENSTOCK_WITH_THRUST_TBB.
include(${CMAKE_CURRENT_LIST_DIR}/penstockThrust.cmake)
if(TARGET penstock::thrust_tbb)
  set(PENSTOCK_WITH_THRUST_TBB ON)
  message(STATUS "penstock: Thrust on oneTBB from ${PENSTOCK_THRUST_INCLUDE_DIR}: GPU steps' code runs without a GPU")
else()
  set(PENSTOCK_WITH_THRUST_TBB OFF)
  message(STATUS "penstock: no Thrust found (install the CUDA toolkit or libthrust-dev): "
                 "GPU steps' code cannot be built for the host backend")
endif()

# penstock_thrust_sources(<source>...): for penstock's own sanitizer builds
# (PENSTOCK_SANITIZE with undefined), UBSan's null check off in these
# sources, which use Thrust: Thrust dispatches on its execution-policy types
# through null pointers by design (thrust/detail/reference.h: "just use a
# null pointer for dispatch"), which the check reports. Set on the sources,
# so that it comes after the target's -fsanitize flags.
function(penstock_thrust_sources)
  if(PENSTOCK_SANITIZE MATCHES "undefined")
    set_source_files_properties(${ARGN} DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}
      PROPERTIES COMPILE_OPTIONS -fno-sanitize=null)
  endif()
endfunction()
