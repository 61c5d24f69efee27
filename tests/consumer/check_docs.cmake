# Fails unless the 'Use it in your project' section shows each consumer file
# exactly, as a fenced block, so the snippets users copy are the ones CTest and
# scripts/conan_create.sh build and run.
# Usage: cmake -DSOURCE_DIR=<penstock source> -P check_docs.cmake
set(snippets
  "cpp:tests/consumer/find_package/main.cpp"
  "cmake:tests/consumer/find_package/CMakeLists.txt"
  "cmake:tests/consumer/add_subdirectory/CMakeLists.txt"
  "cmake:tests/consumer/fetch_content/CMakeLists.txt"
  "cmake:conan/test_package/CMakeLists.txt")
set(checked 0)
foreach(doc README.md)
  file(READ ${SOURCE_DIR}/${doc} text)
  string(FIND "${text}" "## Use it in your project\n" start)
  if(start EQUAL -1)
    continue()
  endif()
  string(SUBSTRING "${text}" ${start} -1 text)
  foreach(entry IN LISTS snippets)
    string(REPLACE ":" ";" entry "${entry}")
    list(GET entry 0 lang)
    list(GET entry 1 file)
    file(READ ${SOURCE_DIR}/${file} content)
    string(FIND "${text}" "```${lang}\n${content}```\n" found)
    if(found EQUAL -1)
      message(FATAL_ERROR "${doc}: 'Use it in your project' does not show ${file} as it is")
    endif()
  endforeach()
  math(EXPR checked "${checked} + 1")
  message(STATUS "${doc}: the snippets match the consumer files")
endforeach()
if(checked EQUAL 0)
  message(FATAL_ERROR "no 'Use it in your project' section in README.md")
endif()
