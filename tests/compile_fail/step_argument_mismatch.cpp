// Compile-fail cases for penstock::error::step_argument_mismatch: an argument
// whose type is not the one the step's callable takes. Built once with
// MISTAKE=0 (the twin: must compile) and once per numbered mistake (must fail
// with exactly the one error named beside it); see CMakeLists.txt.
#include <penstock/penstock.hpp>

#include <string>
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
std::string describe(const table&) { return "a table"; }
model train(const table&, float) { return {}; }
model train_logged(ps::context&, const table&, float) { return {}; }
double score(const model&) { return 1.0; }
std::vector<int> shard_ids(int count) { return std::vector<int>(static_cast<std::size_t>(count)); }

// 1. A node of the wrong type: node inputs must match exactly.
int node_of_another_type(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
  auto summary = ps::step<"describe">(describe)(data);
#if MISTAKE == 1  // step_argument_mismatch<"train", 0, const table&, std::string>
  auto fitted = ps::step<"train">(train)(summary, 0.5f);
#else
  auto fitted = ps::step<"train">(train)(data, 0.5f);
#endif
  auto accuracy = ps::step<"score">(score)(fitted);
  return ps::main(ps::pipeline<"node_of_another_type">(accuracy, summary), argc, argv);
}

// 2. A parameter of the wrong type: parameters must match exactly too, even
//    where a constant of that type would convert.
int param_of_another_type(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 2  // step_argument_mismatch<"train", 1, float, double>
  auto fitted = ps::step<"train">(train)(data, ps::param<double>("rate", 0.5));
#else
  auto fitted = ps::step<"train">(train)(data, ps::param<float>("rate", 0.5f));
#endif
  auto accuracy = ps::step<"score">(score)(fitted);
  return ps::main(ps::pipeline<"param_of_another_type">(accuracy), argc, argv);
}

// 3. The position does not count a leading ps::context&.
int after_context(int argc, char** argv) {
  auto rows = ps::param<int>("rows", 10);
  auto data = ps::step<"load">(load)(rows);
#if MISTAKE == 3  // step_argument_mismatch<"train", 1, float, double>
  auto fitted = ps::step<"train">(train_logged)(data, ps::param<double>("rate", 0.5));
#else
  auto fitted = ps::step<"train">(train_logged)(data, ps::param<float>("rate", 0.5f));
#endif
  auto accuracy = ps::step<"score">(score)(fitted);
  return ps::main(ps::pipeline<"after_context">(accuracy), argc, argv);
}

// 4. ps::map: the callable takes another type than the vector's elements.
int map_element_of_another_type(int argc, char** argv) {
  auto count = ps::param<int>("count", 4);
  auto ids = ps::step<"shard_ids">(shard_ids)(count);
#if MISTAKE == 4  // step_argument_mismatch<"label", 0, const std::string&, int>
  auto labels = ps::map<"label">([](const std::string& id) { return id + "!"; })(ids);
#else
  auto labels = ps::map<"label">([](const int& id) { return std::to_string(id) + "!"; })(ids);
#endif
  auto first = ps::step<"first">([](const std::vector<std::string>& all) { return all.front(); })(labels);
  return ps::main(ps::pipeline<"map_element_of_another_type">(first), argc, argv);
}
