// Fan-out with ps::map: one node in the pipeline's type, one task per shard at
// run time. Each shard is featurized in parallel, then the results are
// reduced. The number of shards is a parameter, known only at run time.
//
//   ./shards run --param shards=64 --param rows=20000
#include <penstock/penstock.hpp>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace ps = penstock;

struct shard {
  std::uint32_t id = 0;
  std::vector<double> values;
  // cereal: what the step cache stores
  template <class Archive>
  void serialize(Archive& archive) {
    archive(id, values);
  }
};

struct summary {
  double mean = 0;
  double rms = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(mean, rms);
  }
};

std::vector<shard> make_shards(int shards, int rows) {
  std::vector<shard> out(static_cast<std::size_t>(shards));
  std::uint64_t state = 7;
  for (int s = 0; s < shards; ++s) {
    out[s].id = static_cast<std::uint32_t>(s);
    out[s].values.resize(static_cast<std::size_t>(rows));
    for (auto& v : out[s].values) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      v = static_cast<double>(state >> 11) * 0x1.0p-53 + s;
    }
  }
  return out;
}

// The per-shard work: a mean and a root mean square.
summary featurize(ps::context& ctx, const shard& s) {
  ctx.throw_if_stop_requested();
  summary f;
  for (double v : s.values) {
    f.mean += v;
    f.rms += v * v;
  }
  f.mean /= static_cast<double>(s.values.size());
  f.rms = std::sqrt(f.rms / static_cast<double>(s.values.size()));
  return f;
}

double mean_of_rms(const std::vector<summary>& features) {
  double total = 0;
  for (const auto& f : features) total += f.rms;
  return total / static_cast<double>(features.size());
}

int main(int argc, char** argv) {
  auto shards = ps::param<int>("shards", 32);
  auto rows = ps::param<int>("rows", 10000);
  auto data = ps::step<"make_shards">(make_shards)(shards, rows);
  auto features = ps::map<"featurize">(featurize)(data);
  auto result = ps::step<"reduce">(mean_of_rms)(features);
  return ps::main(ps::pipeline<"shards">(result), argc, argv);
}
