// Writes the churn example's data set: 4,000 customers, five features and a
// churned/not-churned label drawn from a known logistic model with noise.
// Deterministic on every platform (splitmix64 and Box-Muller, no <random>
// distributions, whose output the standard leaves to the implementation).
// Usage: churn_data OUTPUT.csv [ROWS]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numbers>
#include <string>

namespace {

struct splitmix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: churn_data OUTPUT.csv [ROWS]\n";
    return 2;
  }
  const long rows = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 4000;
  std::ofstream out(argv[1]);
  if (!out) {
    std::cerr << "churn_data: cannot write " << argv[1] << "\n";
    return 1;
  }
  splitmix64 rng{20261125};
  out << "tenure_months,monthly_charges,support_calls,contract_years,usage_gb,churned\n";
  for (long i = 0; i < rows; ++i) {
    const double tenure = std::floor(1 + 71 * rng.uniform());
    const double charges = std::round((20 + 100 * rng.uniform()) * 100) / 100;
    const double calls = std::floor(std::fabs(rng.normal()) * 2.5);
    const double contract = std::floor(3 * rng.uniform());
    const double usage = std::round(std::fabs(50 + 30 * rng.normal()) * 10) / 10;
    const double logit =
        1.2 - 0.05 * tenure + 0.02 * charges + 0.45 * calls - 0.9 * contract - 0.01 * usage + 0.6 * rng.normal();
    const int churned = rng.uniform() < 1.0 / (1.0 + std::exp(-logit)) ? 1 : 0;
    out << tenure << ',' << charges << ',' << calls << ',' << contract << ',' << usage << ',' << churned << '\n';
  }
  return out.good() ? 0 : 1;
}
