# penstock::thrust_tbb: Thrust with its device system set to oneTBB, for GPU
# steps' code compiled by the host compiler (g++, clang) instead of nvcc. Their
# ps::device_vector then lives in host memory and ps::thrust_policy(ctx) is
# thrust::tbb::par: the same step code runs, and is tested, without a GPU.
# The Thrust that ships with the CUDA toolkit (CCCL) is preferred; without a
# toolkit, Debian's libthrust-dev. Defines the target only where Thrust is
# found; needs penstock::penstock and TBB::tbb defined first.
# Used by penstock's own build (cmake/penstock_thrust.cmake) and installed
# beside penstockConfig.cmake, which includes it.
set(_penstock_thrust_hints)
foreach(_penstock_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
  list(APPEND _penstock_thrust_hints ${_penstock_dir}/cccl ${_penstock_dir})
endforeach()
find_path(PENSTOCK_THRUST_INCLUDE_DIR thrust/version.h
  HINTS ${_penstock_thrust_hints}
  PATHS /usr/local/cuda/include/cccl /usr/local/cuda/include /usr/include
  NO_DEFAULT_PATH
  DOC "Thrust's headers (the CUDA toolkit's include/cccl, or Debian's libthrust-dev)")
unset(_penstock_thrust_hints)
unset(_penstock_dir)
if(PENSTOCK_THRUST_INCLUDE_DIR AND NOT TARGET penstock::thrust_tbb)
  # Imported: its include directory is a system one, so Thrust's own headers
  # are not held to the including project's warnings.
  add_library(penstock::thrust_tbb INTERFACE IMPORTED)
  set_target_properties(penstock::thrust_tbb PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${PENSTOCK_THRUST_INCLUDE_DIR}
    INTERFACE_COMPILE_DEFINITIONS THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_TBB
    INTERFACE_LINK_LIBRARIES "penstock::penstock;TBB::tbb")
endif()
