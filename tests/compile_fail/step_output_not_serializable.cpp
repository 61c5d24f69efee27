// Compile-fail cases for penstock::error::step_output_not_serializable: a
// cached step (the default) whose output cereal cannot serialize, so the step
// cache could not store it. Built once with MISTAKE=0 (the twin: must
// compile) and once per numbered mistake; see CMakeLists.txt.
#include <penstock/penstock.hpp>

#include <memory>
#include <vector>

namespace ps = penstock;

struct table {
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(values);
  }
};
// No serialize: cereal cannot store it.
struct connection {
  int handle = 0;
};

table load(int rows) { return table{std::vector<double>(static_cast<std::size_t>(rows))}; }
connection open_connection(const table& t) { return connection{static_cast<int>(t.values.size())}; }
int rows_of(const connection& c) { return c.handle; }

// 1. A step returning a type with no serialize function.
int step_output(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 1  // step_output_not_serializable<"connect", connection>
  auto link = ps::step<"connect">(open_connection)(data);
#else
  auto link = ps::step<"connect">(open_connection).cache(ps::never)(data);
#endif
  auto counted = ps::step<"count">(rows_of)(link);
  return ps::main(ps::pipeline<"step_output">(counted), argc, argv);
}

// 2. A step returning a std::unique_ptr (cereal has no archive for it here).
int pointer_output(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
#if MISTAKE == 2  // step_output_not_serializable<"boxed", std::unique_ptr<table>>
  auto boxed = ps::step<"boxed">([](int n) { return std::make_unique<table>(load(n)); })(rows);
#else
  auto boxed = ps::step<"boxed">([](int n) { return std::make_unique<table>(load(n)); }).cache(ps::never)(rows);
#endif
  auto size = ps::step<"size">([](const std::unique_ptr<table>& t) { return t->values.size(); })(boxed);
  return ps::main(ps::pipeline<"pointer_output">(size), argc, argv);
}

// 3. A ps::map whose elements' results cannot be serialized.
int map_output(int argc, char** argv) {
  auto count = ps::param<int>("count", 4);
  auto tables = ps::step<"tables">([](int n) { return std::vector<table>(static_cast<std::size_t>(n)); })(count);
#if MISTAKE == 3  // step_output_not_serializable<"connect_each", connection>
  auto links = ps::map<"connect_each">(open_connection)(tables);
#else
  auto links = ps::map<"connect_each">(open_connection).cache(ps::never)(tables);
#endif
  auto first = ps::step<"first">([](const std::vector<connection>& v) { return v.size(); })(links);
  return ps::main(ps::pipeline<"map_output">(first), argc, argv);
}
