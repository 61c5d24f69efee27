// A two-step pipeline, numbers(n) then sum: `run --param n=10 --quiet` prints "sum = 55".
#include <penstock/penstock.hpp>

#include <numeric>
#include <vector>
namespace ps = penstock;

std::vector<int> numbers(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 1);
  return v;
}
int sum(const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }

int main(int argc, char** argv) {
  auto n = ps::param<int>("n", 10);
  auto values = ps::step<"numbers">(numbers)(n);
  auto total = ps::step<"sum">(sum)(values);
  return ps::main(ps::pipeline<"consumer">(total), argc, argv);
}
