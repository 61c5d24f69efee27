// Compile-fail cases for penstock::error::map_input_not_a_vector: ps::map
// applied to a node whose value is not a std::vector. Built once with
// MISTAKE=0 (the twin: must compile) and once per numbered mistake (must fail
// with exactly the one error named beside it); see CMakeLists.txt.
#include <penstock/penstock.hpp>

#include <vector>

namespace ps = penstock;

int shard_count(int count) { return count; }
std::vector<int> shard_ids(int count) { return std::vector<int>(static_cast<std::size_t>(count)); }

// 1. Mapping over a node<int>.
int map_over_a_scalar(int argc, char** argv) {
  auto count = ps::param<int>("count", 4);
  auto shards = ps::step<"shard_count">(shard_count)(count);
  auto ids = ps::step<"shard_ids">(shard_ids)(count);
#if MISTAKE == 1  // map_input_not_a_vector<"square", int>
  auto squares = ps::map<"square">([](int id) { return id * id; })(shards);
#else
  auto squares = ps::map<"square">([](int id) { return id * id; })(ids);
#endif
  auto total = ps::step<"total">([](const std::vector<int>& all) { return all.size(); })(squares);
  return ps::main(ps::pipeline<"map_over_a_scalar">(total, shards), argc, argv);
}
