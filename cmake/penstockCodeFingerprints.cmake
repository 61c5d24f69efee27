# penstock_code_fingerprints(<target>)
#
# Code fingerprints for the step cache: a step's cache key includes the digest
# of the source file in which its `ps::step<"name">(fn)` expression is written,
# so editing that file, rebuilding and rerunning reruns the step without a
# `.version()` bump. This function puts those digests into the binary:
#
#   add_executable(app main.cpp steps.cpp steps.hpp)
#   target_link_libraries(app PRIVATE penstock::penstock)
#   penstock_code_fingerprints(app)
#
# At build time (a custom command that the build tool reruns whenever one of
# the files changes; no reconfigure) it hashes every source file of <target>
# with SHA-256 (penstock_fingerprint_sources.cmake) and writes
# penstock_code_fingerprints/<target>.cpp in the current binary directory,
# which it adds to <target>. That file's static initializer registers a table
# {absolute path, SHA-256 in hex} with the runtime
# (penstock::detail::r1::register_source_fingerprints), which takes the first
# 128 bits of the SHA-256 as the file's penstock::digest (so digest::hex() is
# the start of what `sha256sum <file>` prints). The generated file is
# rewritten only when a digest changes: touching a file without changing it
# rewrites and recompiles nothing of it; editing a file recompiles that one
# small file and relinks.
#
# What is fingerprinted: the target's SOURCES, the ones it has at the end of
# the directory that calls this function (so target_sources() after the call
# counts), made absolute against the target's source directory. Headers count
# if they are listed in SOURCES. Left out: generated sources (GENERATED),
# entries with generator expressions, and files that do not exist at configure
# time.
#
# What counts as a step's code: only the file where ps::step is written. A
# helper function, a header or a library that the step calls, but that lives
# in another file, is not covered: bump the step's `.version(n)` when such
# code changes. A step written in a header uses that header's digest if the
# header is listed in the SOURCES of a fingerprinted target. Steps whose file
# is not registered get no code fingerprint.
#
# Target types:
#   EXECUTABLE, SHARED_LIBRARY, MODULE_LIBRARY, OBJECT_LIBRARY: the generated
#     object is linked in as it is.
#   STATIC_LIBRARY: the linker would drop an archive member that nothing
#     references, static initializer and all. The generated file therefore
#     defines an extern "C" symbol, and the library gets an INTERFACE link
#     option that marks it undefined (GNU ld, gold, lld: --undefined=<symbol>;
#     Apple ld: -u _<symbol>; MSVC: /INCLUDE:<symbol>), so every executable or
#     shared library that links the static library pulls the table in. Nothing
#     else is needed from the user; calling the function on the final
#     executable as well is fine.
#   Shared libraries linked into the executable register into the same
#   registry as the executable: the dynamic linker binds every copy of the
#   runtime's register/look-up functions to one. A library loaded with
#   dlopen() that carries its own copy of the runtime registers into that copy
#   unless the executable exports its symbols (ENABLE_EXPORTS); the same holds
#   if the runtime is built with hidden visibility.
#
# It appends penstock::runtime to the target's LINK_LIBRARIES (directly on
# the property, so either target_link_libraries() signature can be used).
#
# Limits:
#   - Call it once per target, in the CMakeLists.txt that creates the target
#     (the generated file must come from a custom command in that directory).
#   - Paths are matched as the compiler sees them: CMake passes sources as
#     absolute paths, which std::source_location::file_name() returns. Flags
#     that rewrite file names (-fmacro-prefix-map, -ffile-prefix-map, or
#     ccache's base_dir, which makes paths relative) break the match; such
#     steps get no code fingerprint.
#   - Tested with Ninja and Makefile generators, g++ and GNU ld on Linux.
include_guard(GLOBAL)

function(penstock_code_fingerprints target)
  set(usage "penstock_code_fingerprints(<target>)")
  if(NOT ARGC EQUAL 1)
    list(JOIN ARGV " " given)
    message(FATAL_ERROR "${usage} takes exactly one target; got '${given}'.")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "penstock_code_fingerprints(${target}): there is no target named '${target}'.")
  endif()
  get_target_property(aliased ${target} ALIASED_TARGET)
  if(aliased)
    set(target ${aliased})
  endif()
  get_target_property(imported ${target} IMPORTED)
  get_target_property(type ${target} TYPE)
  if(imported)
    message(FATAL_ERROR "penstock_code_fingerprints(${target}): '${target}' is an imported target; "
                        "call it on a target this project compiles.")
  endif()
  if(NOT type MATCHES "^(EXECUTABLE|SHARED_LIBRARY|MODULE_LIBRARY|STATIC_LIBRARY|OBJECT_LIBRARY)$")
    message(FATAL_ERROR "penstock_code_fingerprints(${target}): '${target}' is an ${type}, which compiles "
                        "nothing; call it on the executable or library that compiles the steps.")
  endif()
  get_target_property(done ${target} PENSTOCK_CODE_FINGERPRINTS)
  if(done)
    message(FATAL_ERROR "penstock_code_fingerprints(${target}) was already called for '${target}' (${done}); "
                        "call it once per target.")
  endif()
  get_target_property(source_dir ${target} SOURCE_DIR)
  cmake_path(COMPARE "${source_dir}" EQUAL "${CMAKE_CURRENT_SOURCE_DIR}" same_dir)
  if(NOT same_dir)
    message(FATAL_ERROR "penstock_code_fingerprints(${target}): call it in ${source_dir}/CMakeLists.txt, "
                        "where '${target}' is created, not in ${CMAKE_CURRENT_SOURCE_DIR}.")
  endif()
  set_property(TARGET ${target} PROPERTY PENSTOCK_CODE_FINGERPRINTS "${CMAKE_CURRENT_LIST_FILE}")
  # Sources are collected at the end of this directory, so that sources added
  # after the call count too. (A deferred call's arguments are evaluated when
  # it runs, hence EVAL: target and module directory are fixed now.)
  cmake_language(EVAL CODE "cmake_language(DEFER CALL _penstock_code_fingerprints_generate [==[${target}]==] \
    [==[${CMAKE_CURRENT_FUNCTION_LIST_DIR}]==])")
endfunction()

# The deferred part of penstock_code_fingerprints().
function(_penstock_code_fingerprints_generate target module_dir)
  get_target_property(type ${target} TYPE)
  get_target_property(source_dir ${target} SOURCE_DIR)
  get_target_property(binary_dir ${target} BINARY_DIR)
  get_target_property(entries ${target} SOURCES)
  if(NOT entries)
    set(entries "")
  endif()

  set(sources "")
  set(skipped "")
  foreach(entry IN LISTS entries)
    if(entry MATCHES "\\$<")
      list(APPEND skipped "${entry} (generator expression)")
      continue()
    endif()
    cmake_path(ABSOLUTE_PATH entry BASE_DIRECTORY "${source_dir}" NORMALIZE OUTPUT_VARIABLE path)
    if(NOT EXISTS "${path}" AND NOT IS_ABSOLUTE "${entry}")
      # CMake looks for a relative source in the binary directory too.
      cmake_path(ABSOLUTE_PATH entry BASE_DIRECTORY "${binary_dir}" NORMALIZE OUTPUT_VARIABLE path)
    endif()
    get_source_file_property(generated "${path}" TARGET_DIRECTORY ${target} GENERATED)
    if(generated)
      list(APPEND skipped "${entry} (generated)")
    elseif(NOT EXISTS "${path}" OR IS_DIRECTORY "${path}")
      list(APPEND skipped "${entry} (not found)")
    else()
      list(APPEND sources "${path}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES sources)
  list(SORT sources)
  if(NOT sources)
    if(skipped)
      list(JOIN skipped ", " skipped)
      set(skipped " (skipped: ${skipped})")
    endif()
    message(FATAL_ERROR "penstock_code_fingerprints(${target}): '${target}' has no source files on disk to "
                        "fingerprint${skipped}.")
  endif()
  if(skipped)
    list(JOIN skipped ", " skipped)
    message(VERBOSE "penstock_code_fingerprints(${target}): not fingerprinted: ${skipped}")
  endif()

  # A symbol unique to this target in this build tree, for the static case.
  string(MAKE_C_IDENTIFIER "${target}" id)
  string(SHA256 tree_hash "${binary_dir}/${target}")
  string(SUBSTRING "${tree_hash}" 0 12 tree_hash)
  set(symbol "penstock_code_fingerprints_${id}_${tree_hash}")

  # The inputs of the build-time step, rewritten only when they change.
  set(dir "${binary_dir}/penstock_code_fingerprints")
  set(inputs "${dir}/${id}.inputs.cmake")
  set(generated "${dir}/${id}.cpp")
  set(text "# Generated by penstock_code_fingerprints(${target}); read by penstock_fingerprint_sources.cmake.\n")
  string(APPEND text "set(PENSTOCK_FP_TARGET [==[${target}]==])\n")
  string(APPEND text "set(PENSTOCK_FP_SYMBOL ${symbol})\n")
  string(APPEND text "set(PENSTOCK_FP_SOURCES\n")
  foreach(path IN LISTS sources)
    if(path MATCHES "]==]")
      message(FATAL_ERROR "penstock_code_fingerprints(${target}): cannot handle the path '${path}'.")
    endif()
    string(APPEND text "  [==[${path}]==]\n")
  endforeach()
  string(APPEND text ")\n")
  set(old "")
  if(EXISTS "${inputs}")
    file(READ "${inputs}" old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE "${inputs}" "${text}")
  endif()

  set(script "${module_dir}/penstock_fingerprint_sources.cmake")
  add_custom_command(
    OUTPUT "${generated}"
    COMMAND "${CMAKE_COMMAND}" "-DINPUTS=${inputs}" "-DOUTPUT=${generated}" -P "${script}"
    DEPENDS ${sources} "${inputs}" "${script}"
    COMMENT "Fingerprinting the source files of ${target}"
    VERBATIM)
  set_source_files_properties("${generated}" TARGET_DIRECTORY ${target} PROPERTIES
    GENERATED TRUE SKIP_UNITY_BUILD_INCLUSION TRUE SKIP_PRECOMPILE_HEADERS TRUE)
  target_sources(${target} PRIVATE "${generated}")
  # Not target_link_libraries(): that would clash with a target that uses the
  # plain (keyword-less) signature.
  set_property(TARGET ${target} APPEND PROPERTY LINK_LIBRARIES penstock::runtime)
  if(type STREQUAL "STATIC_LIBRARY")
    set_property(TARGET ${target} APPEND PROPERTY INTERFACE_LINK_LIBRARIES "$<LINK_ONLY:penstock::runtime>")
    if(MSVC)
      set(keep "/INCLUDE:${symbol}")
    elseif(APPLE)
      set(keep "LINKER:-u,_${symbol}")
    else()
      set(keep "LINKER:--undefined=${symbol}")
    endif()
    set_property(TARGET ${target} APPEND PROPERTY INTERFACE_LINK_OPTIONS "${keep}")
  endif()
endfunction()
