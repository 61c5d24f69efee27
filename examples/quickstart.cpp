#include <penstock/penstock.hpp>

#include <numeric>
#include <vector>
namespace ps = penstock;

std::vector<double> make_data(int n) {
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}
double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }
double scale(double x, double factor) { return x * factor; }

int main(int argc, char** argv) {
  auto n = ps::param<int>("n", 100);
  auto data = ps::step<"data">(make_data)(n);
  auto avg = ps::step<"mean">(mean)(data);
  auto result = ps::step<"scale">(scale)(avg, 2.0);
  return ps::main(ps::pipeline<"quickstart">(result), argc, argv);
}
