# Install rules and the CMake package for `cmake --install`:
#   include/penstock/...                   the DSL headers and the generated version.hpp
#   lib/libpenstock_runtime.a              the runtime
#   lib/libpenstock_cuda.a                 the CUDA runtime, in a build with CUDA
#   lib/cmake/penstock/penstockConfig.cmake, penstockConfigVersion.cmake,
#                      penstockTargets*.cmake (penstock::penstock, penstock::runtime,
#                      and penstock::cuda in a build with CUDA)
#   bin/penstock                           the standalone tool (runs, show, compare, logs, lineage)
# Included from the top-level CMakeLists.txt once the targets exist.
if(NOT PENSTOCK_INSTALL)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PENSTOCK_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/penstock
  CACHE STRING "Where penstockConfig.cmake is installed, relative to the prefix")
mark_as_advanced(PENSTOCK_INSTALL_CMAKEDIR)

# Exported as penstock::runtime (and penstock::cuda), the same names as the
# ALIAS targets inside the build.
set_target_properties(penstock_runtime PROPERTIES EXPORT_NAME runtime)
set(penstock_installed_targets penstock penstock_runtime)
if(PENSTOCK_WITH_CUDA)
  set_target_properties(penstock_cuda PROPERTIES EXPORT_NAME cuda)
  list(APPEND penstock_installed_targets penstock_cuda)
  set(penstock_gpu_headers_excluded)
else()
  # The GPU headers (include/penstock/cuda/) come with penstock::cuda only.
  set(penstock_gpu_headers_excluded PATTERN cuda EXCLUDE)
endif()

# The installed include directory comes from penstock_runtime's and
# penstock_cuda's $<INSTALL_INTERFACE:include> (runtime/CMakeLists.txt,
# runtime/cuda/CMakeLists.txt), hence no INCLUDES DESTINATION here; the
# headers go to the same place.
install(TARGETS ${penstock_installed_targets}
  EXPORT penstockTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT penstock_Development)
install(TARGETS penstock_tool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT penstock_Runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/penstock
  DESTINATION include COMPONENT penstock_Development
  FILES_MATCHING PATTERN "*.hpp" ${penstock_gpu_headers_excluded})
install(FILES ${PROJECT_BINARY_DIR}/generated/penstock/version.hpp
  DESTINATION include/penstock COMPONENT penstock_Development)

install(EXPORT penstockTargets
  NAMESPACE penstock::
  DESTINATION ${PENSTOCK_INSTALL_CMAKEDIR} COMPONENT penstock_Development)
# penstockConfig.cmake.in reads PENSTOCK_WITH_CUDA and CUDAToolkit_VERSION_MAJOR.
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/penstockConfig.cmake.in
  ${PROJECT_BINARY_DIR}/penstockConfig.cmake
  INSTALL_DESTINATION ${PENSTOCK_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/penstockConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/penstockConfig.cmake ${PROJECT_BINARY_DIR}/penstockConfigVersion.cmake
  DESTINATION ${PENSTOCK_INSTALL_CMAKEDIR} COMPONENT penstock_Development)
