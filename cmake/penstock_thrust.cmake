# penstock::thrust_tbb: Thrust with its device system set to oneTBB, for GPU
# steps' code compiled by the host compiler (g++, clang) instead of nvcc. Their
# ps::device_vector then lives in host memory and ps::thrust_policy(ctx) is
# thrust::tbb::par: the same step code runs, and is tested, without a GPU.
# The Thrust that ships with the CUDA toolkit (CCCL) is preferred; without a
# toolkit, Debian's libthrust-dev. Sets PENSTOCK_WITH_THRUST_TBB.
set(penstock_thrust_hints)
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    list(APPEND penstock_thrust_hints ${dir}/cccl ${dir})
  endforeach()
endif()
find_path(PENSTOCK_THRUST_INCLUDE_DIR thrust/version.h
  HINTS ${penstock_thrust_hints}
  PATHS /usr/local/cuda/include/cccl /usr/local/cuda/include /usr/include
  NO_DEFAULT_PATH
  DOC "Thrust's headers (the CUDA toolkit's include/cccl, or Debian's libthrust-dev)")
set(PENSTOCK_WITH_THRUST_TBB OFF)
if(PENSTOCK_THRUST_INCLUDE_DIR)
  set(PENSTOCK_WITH_THRUST_TBB ON)
  add_library(penstock_thrust_tbb INTERFACE)
  add_library(penstock::thrust_tbb ALIAS penstock_thrust_tbb)
  # SYSTEM: Thrust's own headers are not held to penstock's warnings.
  target_include_directories(penstock_thrust_tbb SYSTEM INTERFACE ${PENSTOCK_THRUST_INCLUDE_DIR})
  target_compile_definitions(penstock_thrust_tbb INTERFACE THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_TBB)
  target_link_libraries(penstock_thrust_tbb INTERFACE penstock TBB::tbb)
  message(STATUS "penstock: Thrust on oneTBB from ${PENSTOCK_THRUST_INCLUDE_DIR}: GPU steps' code runs without a GPU")
else()
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
