// Compile-fail cases for penstock::error::step_not_invocable_with: a generic
// callable (its parameter types are unknown until it is called) that cannot
// be called with the given argument types. Built once with MISTAKE=0 (the
// twin: must compile) and once per numbered mistake (must fail with exactly
// the one error named beside it); see CMakeLists.txt.
#include <penstock/penstock.hpp>

#include <concepts>
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
double score(const model&) { return 1.0; }
std::vector<int> shard_ids(int count) { return std::vector<int>(static_cast<std::size_t>(count)); }

// 1. A generic lambda whose constraint rejects an argument.
int generic_lambda(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
  auto fit = ps::step<"fit">([](const auto&, std::floating_point auto) { return model{}; });
#if MISTAKE == 1  // step_not_invocable_with<"fit", table, int>
  auto fitted = fit(data, ps::param<int>("rate", 1));
#else
  auto fitted = fit(data, ps::param<double>("rate", 0.5));
#endif
  auto accuracy = ps::step<"score">(score)(fitted);
  return ps::main(ps::pipeline<"generic_lambda">(accuracy), argc, argv);
}

// 2. A generic lambda given one argument too many.
int generic_lambda_arity(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 2  // step_not_invocable_with<"fit", table, int>
  auto fitted = ps::step<"fit">([](const auto&) { return model{}; })(data, rows);
#else
  auto fitted = ps::step<"fit">([](const auto&) { return model{}; })(data);
#endif
  auto accuracy = ps::step<"score">(score)(fitted);
  return ps::main(ps::pipeline<"generic_lambda_arity">(accuracy), argc, argv);
}

// 3. ps::map with a generic callable that cannot take the elements.
int map_generic_lambda(int argc, char** argv) {
  auto count = ps::param<int>("count", 4);
  auto ids = ps::step<"shard_ids">(shard_ids)(count);
#if MISTAKE == 3  // step_not_invocable_with<"halve", int>
  auto halves = ps::map<"halve">([](std::floating_point auto x) { return x / 2; })(ids);
#else
  auto halves = ps::map<"halve">([](std::integral auto x) { return x / 2; })(ids);
#endif
  auto first = ps::step<"first">([](const std::vector<int>& all) { return all.front(); })(halves);
  return ps::main(ps::pipeline<"map_generic_lambda">(first), argc, argv);
}
