// Compile-fail cases for penstock::error::step_argument_count_mismatch: a step
// applied to more or fewer arguments than its callable takes. Built once with
// MISTAKE=0 (the twin: must compile) and once per numbered mistake (must fail
// with exactly the one error named beside it); see CMakeLists.txt.
#include <penstock/penstock.hpp>

#include <utility>
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
model train_logged(ps::context&, const table&, float) { return {}; }
double score(const model&) { return 1.0; }
double score_on(const model&, const table&) { return 1.0; }
std::pair<table, table> split_rows(const table&, float) { return {}; }
std::vector<int> shard_ids(int count) { return std::vector<int>(static_cast<std::size_t>(count)); }

// 1. One argument too many.
int too_many(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 1  // step_argument_count_mismatch<"train", 2, 3>
  auto fitted = ps::step<"train">(train)(data, 0.5f, rows);
#else
  auto fitted = ps::step<"train">(train)(data, 0.5f);
#endif
  auto accuracy = ps::step<"score">(score)(fitted);
  return ps::main(ps::pipeline<"too_many">(accuracy), argc, argv);
}

// 2. One argument too few; a leading ps::context& is not counted.
int too_few(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 2  // step_argument_count_mismatch<"train", 2, 1>
  auto fitted = ps::step<"train">(train_logged)(data);
#else
  auto fitted = ps::step<"train">(train_logged)(data, 0.5f);
#endif
  auto accuracy = ps::step<"score">(score)(fitted);
  return ps::main(ps::pipeline<"too_few">(accuracy), argc, argv);
}

// 3. ps::map passes one element: its callable must take exactly one.
int map_callable_arity(int argc, char** argv) {
  auto count = ps::param<int>("count", 4);
  auto ids = ps::step<"shard_ids">(shard_ids)(count);
#if MISTAKE == 3  // step_argument_count_mismatch<"square", 2, 1>
  auto squares = ps::map<"square">([](int id, int power) { return id * power; })(ids);
#else
  auto squares = ps::map<"square">([](int id) { return id * id; })(ids);
#endif
  auto first = ps::step<"first">([](const std::vector<int>& all) { return all.front(); })(squares);
  return ps::main(ps::pipeline<"map_callable_arity">(first), argc, argv);
}

// 4. Nodes projected out of a failed step (ps::get) fail silently: one error.
int projections_of_a_failed_step(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 4  // step_argument_count_mismatch<"split", 2, 1>
  auto parts = ps::step<"split">(split_rows)(data);
#else
  auto parts = ps::step<"split">(split_rows)(data, 0.8f);
#endif
  auto fitted = ps::step<"train">(train)(ps::get<0>(parts), 0.5f);
  auto accuracy = ps::step<"score">(score_on)(fitted, ps::get<1>(parts));
  return ps::main(ps::pipeline<"projections_of_a_failed_step">(accuracy), argc, argv);
}
