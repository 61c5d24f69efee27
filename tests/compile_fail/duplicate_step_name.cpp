// Compile-fail cases for penstock::error::duplicate_step_name: two different
// steps with one name in one pipeline. Built once with MISTAKE=0 (the twin:
// must compile) and once per numbered mistake (must fail with exactly the one
// error named beside it); see CMakeLists.txt.
#include <penstock/penstock.hpp>

namespace ps = penstock;

struct table {
  template <class Archive>
  void serialize(Archive&) {}  // cacheable (nothing to store)
};

table load(int rows) { return rows > 0 ? table{} : table{}; }
table load_cached(int rows) { return rows > 0 ? table{} : table{}; }
int count_rows(const table&) { return 1; }
int join(const table&, const table&) { return 2; }

// 1. A step that merges two graphs, each with its own step "load".
int merged_by_a_step(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto fresh = ps::step<"load">(load)(rows);
#if MISTAKE == 1  // duplicate_step_name<"load", table (*)(int), <lambda(int)>>, at "join"
  auto cached = ps::step<"load">([](int n) { return load_cached(n); })(rows);
  auto joined = ps::step<"join">(join)(fresh, cached);
#else
  auto cached = ps::step<"load_cached">([](int n) { return load_cached(n); })(rows);
  auto joined = ps::step<"join">(join)(fresh, cached);
#endif
  return ps::main(ps::pipeline<"merged_by_a_step">(joined), argc, argv);
}

// 2. A pipeline whose outputs each depend on a step "load".
int merged_by_the_pipeline(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto fresh = ps::step<"load">(load)(rows);
#if MISTAKE == 2  // duplicate_step_name<"load", table (*)(int), <lambda(int)>>, at ps::pipeline
  auto cached = ps::step<"load">([](int n) { return load_cached(n); })(rows);
  auto pipeline = ps::pipeline<"merged_by_the_pipeline">(fresh, cached);
#else
  auto cached = ps::step<"load_cached">([](int n) { return load_cached(n); })(rows);
  auto pipeline = ps::pipeline<"merged_by_the_pipeline">(fresh, cached);
#endif
  return ps::main(pipeline, argc, argv);
}

// 3. A step named like one of its own ancestors.
int named_like_an_ancestor(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 3  // duplicate_step_name<"load", table (*)(int), int (*)(const table&)>
  auto counted = ps::step<"load">(count_rows)(data);
#else
  auto counted = ps::step<"count_rows">(count_rows)(data);
#endif
  auto doubled = ps::step<"double">([](int n) { return 2 * n; })(counted);
  return ps::main(ps::pipeline<"named_like_an_ancestor">(doubled), argc, argv);
}
