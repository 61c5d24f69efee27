// Compile-fail cases for penstock::error::command_argument_not_supported: a
// command's argument that a command line cannot carry (a value with no text
// form, as a node, a parameter or a constant). Built once with MISTAKE=0
// (the twin: must compile) and once per numbered mistake; see CMakeLists.txt.
#include <penstock/penstock.hpp>

#include <string>
#include <vector>

namespace ps = penstock;

std::vector<double> load(int rows) { return std::vector<double>(static_cast<std::size_t>(rows)); }
std::string describe(const std::vector<double>& v) { return std::to_string(v.size()); }

// 1. A node of std::vector<double>: convert it to text (or a file) in a step first.
int node_argument(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 1  // command_argument_not_supported<"show", 2, node<std::vector<double>, ...>>
  auto shown = ps::command<"show">("/bin/echo", "--data", data, ps::output_file("out"));
#else
  auto shown = ps::command<"show">("/bin/echo", "--data", ps::step<"describe">(describe)(data), ps::output_file("out"));
#endif
  return ps::main(ps::pipeline<"node_argument">(shown), argc, argv);
}

// 2. A constant of a type with no text form.
struct settings {
  int depth = 3;
};
int constant_argument(int argc, char** argv) {
#if MISTAKE == 2  // command_argument_not_supported<"fit", 1, settings>
  auto fitted = ps::command<"fit">("/bin/echo", settings{}, ps::output_file("model"));
#else
  auto fitted = ps::command<"fit">("/bin/echo", settings{}.depth, ps::output_file("model"));
#endif
  return ps::main(ps::pipeline<"constant_argument">(fitted), argc, argv);
}
