// Compile-fail cases for penstock::error::command_without_output: a command
// that declares nothing it produces, so its node would have no value. Built
// once with MISTAKE=0 (the twin: must compile) and once per numbered
// mistake; see CMakeLists.txt.
#include <penstock/penstock.hpp>

namespace ps = penstock;

// 1. The output path passed as a plain string instead of ps::output_file.
int no_output(int argc, char** argv) {
  auto input = ps::param<ps::file>("input");
#if MISTAKE == 1  // command_without_output<"convert">
  auto converted = ps::command<"convert">("/usr/bin/iconv", "-f", "latin1", input, "-o", "out.txt");
#else
  auto converted = ps::command<"convert">("/usr/bin/iconv", "-f", "latin1", input, "-o", ps::output_file("out.txt"));
#endif
  return ps::main(ps::pipeline<"no_output">(converted), argc, argv);
}
