// A pipeline of Python scripts and C++ steps: Python generates a data set
// and prepares its features, C++ trains a logistic regression, Python writes
// the report. Each script is a ps::command: keyed by its own content (and
// the shared module in mixed/lib), its inputs and its environment, so a
// second run is all cache hits, and editing featurize.py reruns that step and
// whatever its new output changes.
//
//   ./mixed run [--param rows=5000] [--param seed=7] [--param epochs=400]
//
// The scripts are read from examples/mixed in the source tree, or from the
// directory named by PENSTOCK_MIXED_SCRIPTS.
#include <penstock/penstock.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ps = penstock;

namespace {

struct model {
  std::vector<double> weights;
  double bias = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(weights, bias);
  }
};

std::filesystem::path scripts() {
  if (const char* dir = std::getenv("PENSTOCK_MIXED_SCRIPTS"); dir != nullptr && *dir != '\0') return dir;
  return PENSTOCK_MIXED_SCRIPTS_DIR;
}

// features.csv as featurize.py writes it: a header, then the features and
// the label (last) of each row.
model train(ps::context& ctx, const ps::file& features, int epochs, double rate) {
  std::ifstream in(features.path());
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error("'" + features.string() + "' is empty");
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(std::stod(cell));
    y.push_back(row.back());
    row.pop_back();
    x.push_back(std::move(row));
  }
  if (x.empty()) throw std::runtime_error("'" + features.string() + "' has no rows");
  model m{std::vector<double>(x.front().size(), 0.0), 0.0};
  const double n = static_cast<double>(x.size());
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    ctx.throw_if_stop_requested();
    std::vector<double> gradient(m.weights.size(), 0.0);
    double bias_gradient = 0;
    double loss = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      double z = m.bias;
      for (std::size_t j = 0; j < m.weights.size(); ++j) z += m.weights[j] * x[i][j];
      const double p = 1 / (1 + std::exp(-z));
      loss -= y[i] * std::log(p + 1e-12) + (1 - y[i]) * std::log(1 - p + 1e-12);
      for (std::size_t j = 0; j < m.weights.size(); ++j) gradient[j] += (p - y[i]) * x[i][j];
      bias_gradient += p - y[i];
    }
    for (std::size_t j = 0; j < m.weights.size(); ++j) m.weights[j] -= rate * gradient[j] / n;
    m.bias -= rate * bias_gradient / n;
    if (epoch % 20 == 0 || epoch == epochs) ctx.log_metric("loss", loss / n, epoch);
  }
  return m;
}

// The model as JSON, for report.py.
ps::file save_model(ps::context& ctx, const model& m) {
  const auto path = ctx.output_path("model.json");
  std::ofstream out(path);
  out << std::setprecision(17) << "{\"weights\": [";
  for (std::size_t j = 0; j < m.weights.size(); ++j) out << (j == 0 ? "" : ", ") << m.weights[j];
  out << "], \"bias\": " << m.bias << "}\n";
  if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
  return ps::file(path);
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path dir = scripts();
  auto rows = ps::param<int>("rows", 5000);
  auto seed = ps::param<int>("seed", 7);
  auto epochs = ps::param<int>("epochs", 400);
  auto rate = ps::param<double>("rate", 0.5);

  auto raw = ps::command<"generate">("python3", ps::source(dir / "generate.py"), "--rows", rows, "--seed", seed,
                                     "--out", ps::output_file("machines.csv"))
                 .env("PYTHONHASHSEED", "0");
  auto prepared = ps::command<"featurize">("python3", ps::source(dir / "featurize.py"), raw,
                                           ps::output_file("features.csv"), ps::output_file("stats.json"))
                      .sources(dir / "lib", "*.py")
                      .env("PYTHONDONTWRITEBYTECODE", "1");
  auto features = ps::get<0>(prepared);
  auto fitted = ps::step<"train">(train)(features, epochs, rate);
  auto saved = ps::step<"save_model">(save_model)(fitted);
  auto report =
      ps::command<"report">("python3", ps::source(dir / "report.py"), features, saved, ps::output_file("report.md"))
          .sources(dir / "lib", "*.py")
          .env("PYTHONDONTWRITEBYTECODE", "1");
  return ps::main(ps::pipeline<"mixed">(report), argc, argv);
}
