# PENSTOCK_CUDA=AUTO|ON|OFF: whether this build has the CUDA runtime
# penstock::cuda (runtime/cuda/) and its tests (tests/gpu/). Sets
# PENSTOCK_WITH_CUDA (ON or OFF) for the rest of the build and for the package
# config. Included from the top-level CMakeLists.txt, in its scope, because
# enable_language(CUDA) must run in the top directory of the targets using it.
set(PENSTOCK_CUDA AUTO CACHE STRING
  "Build the CUDA runtime penstock::cuda: AUTO (when a CUDA toolkit is found), ON (required) or OFF")
set_property(CACHE PENSTOCK_CUDA PROPERTY STRINGS AUTO ON OFF)

string(TOUPPER "${PENSTOCK_CUDA}" penstock_cuda_mode)
if(penstock_cuda_mode MATCHES "^(ON|YES|TRUE|Y|1)$")
  set(penstock_cuda_mode ON)
elseif(penstock_cuda_mode MATCHES "^(OFF|NO|FALSE|N|0|)$")
  set(penstock_cuda_mode OFF)
elseif(NOT penstock_cuda_mode STREQUAL "AUTO")
  message(FATAL_ERROR "PENSTOCK_CUDA is '${PENSTOCK_CUDA}': use AUTO, ON or OFF")
endif()

# The oldest toolkit penstock::cuda builds with: nvcc takes -std=c++20 from
# 12.0 on (cudaMallocAsync, which device_buffer uses, is 11.2).
set(penstock_cuda_minimum_version 12.0)

set(PENSTOCK_WITH_CUDA OFF)
if(NOT penstock_cuda_mode STREQUAL "OFF")
  # Ampere (sm_80) and Hopper (sm_90, the H100), each with PTX that later GPUs
  # compile at load time. -DCMAKE_CUDA_ARCHITECTURES=... or the CUDAARCHS
  # environment variable overrides it ("native" for the GPUs of this machine).
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
    set(CMAKE_CUDA_ARCHITECTURES 80 90 CACHE STRING "CUDA architectures to compile device code for")
  endif()

  # A parent project that enabled CUDA already chose the compiler.
  if(NOT CMAKE_CUDA_COMPILER_LOADED)
    # CMake looks for nvcc on PATH and in $CUDA_PATH/bin only; the toolkit's
    # usual home, /usr/local/cuda, is often not on PATH (CI, sudo, services).
    if(NOT DEFINED CMAKE_CUDA_COMPILER AND "$ENV{CUDACXX}" STREQUAL "")
      find_program(PENSTOCK_NVCC nvcc HINTS ENV CUDA_PATH PATHS /usr/local/cuda PATH_SUFFIXES bin
        DOC "nvcc that PENSTOCK_CUDA=AUTO|ON tries when CMAKE_CUDA_COMPILER is not set")
      mark_as_advanced(PENSTOCK_NVCC)
      if(PENSTOCK_NVCC)
        set(ENV{CUDACXX} ${PENSTOCK_NVCC})  # for check_language's test project and enable_language
      endif()
    endif()
    include(CheckLanguage)
    check_language(CUDA)  # NOTFOUND when there is no working nvcc; cached
    # check_language leaves a (usually empty) normal variable of its own host
    # compiler behind; drop it so the cache value, the user's, applies.
    unset(CMAKE_CUDA_HOST_COMPILER)
    # nvcc compiles host code with this build's C++ compiler unless told
    # otherwise, so host objects from .cu and .cpp files share one ABI and one
    # standard library (nvcc alone would take the first g++ on PATH).
    if(CMAKE_CUDA_COMPILER AND NOT CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX}
       AND CMAKE_CXX_COMPILER_ID MATCHES "^(GNU|Clang)$")
      set(CMAKE_CUDA_HOST_COMPILER ${CMAKE_CXX_COMPILER} CACHE FILEPATH "Host compiler nvcc uses" FORCE)
    endif()
  endif()

  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit ${penstock_cuda_minimum_version})
  endif()

  if(NOT CMAKE_CUDA_COMPILER)
    set(penstock_cuda_missing
      "no working CUDA compiler: nvcc is not on PATH, in $CUDA_PATH/bin or in /usr/local/cuda/bin, or it \
could not build a test program (CMakeFiles/CMakeError.log says why). Set CMAKE_CUDA_COMPILER (or CUDACXX) \
to the toolkit's nvcc")
    # Seen under Conan's toolchain on Debian 12: CMake 3.25.1's compiler check
    # then asks nvcc for C++20, a flag it only learned in 3.25.2.
    if(CMAKE_VERSION VERSION_LESS 3.25.2 AND CMAKE_CXX_STANDARD_REQUIRED AND CMAKE_CXX_STANDARD GREATER_EQUAL 20
       AND NOT DEFINED CMAKE_CUDA_STANDARD)
      string(APPEND penstock_cuda_missing ". CMake ${CMAKE_VERSION} cannot compile CUDA as C++20 (3.25.2 can), \
which CMAKE_CXX_STANDARD=${CMAKE_CXX_STANDARD} with CMAKE_CXX_STANDARD_REQUIRED asks of its compiler check: \
set CMAKE_CUDA_STANDARD to 17 where CMAKE_CXX_STANDARD is set (the toolchain file), or use a newer CMake")
    endif()
  elseif(NOT CUDAToolkit_FOUND)
    set(penstock_cuda_missing
      "nvcc ${CMAKE_CUDA_COMPILER_VERSION} (${CMAKE_CUDA_COMPILER}) works, but find_package(CUDAToolkit \
${penstock_cuda_minimum_version}) found no CUDA toolkit of that version or newer with its runtime library \
(cudart). Set CUDAToolkit_ROOT")
  else()
    set(PENSTOCK_WITH_CUDA ON)
  endif()

  if(PENSTOCK_WITH_CUDA)
    message(STATUS "penstock: CUDA ${CUDAToolkit_VERSION} (${CMAKE_CUDA_COMPILER}, host compiler "
                   "${CMAKE_CUDA_HOST_COMPILER}), architectures ${CMAKE_CUDA_ARCHITECTURES}: building penstock::cuda")
  elseif(penstock_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "PENSTOCK_CUDA=ON, but ${penstock_cuda_missing}; or configure with -DPENSTOCK_CUDA=AUTO or OFF.")
  else()
    message(STATUS "penstock: PENSTOCK_CUDA=AUTO: ${penstock_cuda_missing}. Building without CUDA.")
  endif()
endif()

# penstock_cuda_cxx20(<target>): compile <target>'s .cu files as C++20.
# CMake learned nvcc's C++20 flag in 3.25.2; 3.25.1 (Debian 12) rejects
# cuda_std_20, so there the flag is given directly. Not for exported targets:
# the public GPU headers stay valid C++17 (nvcc's default) on purpose.
function(penstock_cuda_cxx20 target)
  if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.25.2)
    target_compile_features(${target} PRIVATE cuda_std_20)
  else()
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>)
  endif()
endfunction()
