// Compile-fail cases for penstock::error::step_returns_void: a step whose
// callable returns nothing, so it has no value to pass on or cache. Built once
// with MISTAKE=0 (the twin: must compile) and once per numbered mistake (must
// fail with exactly the one error named beside it); see CMakeLists.txt.
#include <penstock/penstock.hpp>

#include <vector>

namespace ps = penstock;

struct table {
  template <class Archive>
  void serialize(Archive&) {}  // cacheable (nothing to store)
};
struct model {
  template <class Archive>
  void serialize(Archive&) {}  // cacheable (nothing to store)
};

table load(int rows) { return rows > 0 ? table{} : table{}; }
model train(const table&, float) { return {}; }
void save(const model&) {}
bool save_and_confirm(const model&) { return true; }
std::vector<int> shard_ids(int count) { return std::vector<int>(static_cast<std::size_t>(count)); }

// 1. A free function returning void.
int function_returns_void(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
  auto fitted = ps::step<"train">(train)(data, 0.5f);
#if MISTAKE == 1  // step_returns_void<"save", void (*)(const model&)>
  auto saved = ps::step<"save">(save)(fitted);
#else
  auto saved = ps::step<"save">(save_and_confirm)(fitted);
#endif
  return ps::main(ps::pipeline<"function_returns_void">(saved), argc, argv);
}

// 2. A generic lambda returning void (known only once it is called).
int generic_returns_void(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 2  // step_returns_void<"inspect", <lambda(const auto:N&)>>
  auto inspected = ps::step<"inspect">([](const auto&) {})(data);
#else
  auto inspected = ps::step<"inspect">([](const auto&) { return true; })(data);
#endif
  return ps::main(ps::pipeline<"generic_returns_void">(inspected), argc, argv);
}

// 3. A ps::map whose callable returns void.
int map_returns_void(int argc, char** argv) {
  auto count = ps::param<int>("count", 4);
  auto ids = ps::step<"shard_ids">(shard_ids)(count);
#if MISTAKE == 3  // step_returns_void<"upload", <lambda(int)>>
  auto uploaded = ps::map<"upload">([](int) {})(ids);
#else
  auto uploaded = ps::map<"upload">([](int id) { return id + 1; })(ids);
#endif
  return ps::main(ps::pipeline<"map_returns_void">(uploaded), argc, argv);
}
