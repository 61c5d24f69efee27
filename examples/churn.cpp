// A tabular ML pipeline on the CPU: load a CSV, split it, standardize the
// features (fitted on the training part only), train a logistic regression by
// gradient descent, and report its accuracy on the held-out part.
//
//   ./churn run --param data=churn.csv [--param lr=0.1] [--param epochs=300]
#include <penstock/penstock.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ps = penstock;

struct table {
  std::vector<std::string> features;
  std::vector<float> x;  // rows × features, row-major
  std::vector<float> y;  // 0 or 1
  [[nodiscard]] std::size_t rows() const { return y.size(); }
  [[nodiscard]] std::size_t cols() const { return features.size(); }
  template <class Archive>
  void serialize(Archive& ar) {
    ar(features, x, y);
  }
};

struct split_tables {
  table train;
  table test;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(train, test);
  }
};

struct model {
  std::vector<float> weights;
  float bias = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(weights, bias);
  }
};

// The last column is the label. A ps::file: the step's key is the file's
// content, so editing the CSV reruns it and its dependents.
table load_csv(const ps::file& csv) {
  const std::string path = csv.string();
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open '" + path + "'");
  table t;
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error("'" + path + "' is empty");
  std::istringstream header(line);
  for (std::string name; std::getline(header, name, ',');) t.features.push_back(name);
  t.features.pop_back();
  for (std::size_t row = 2; std::getline(in, line); ++row) {
    std::istringstream cells(line);
    std::vector<float> values;
    for (std::string cell; std::getline(cells, cell, ',');) values.push_back(std::stof(cell));
    if (values.size() != t.cols() + 1) {
      throw std::runtime_error("'" + path + "' line " + std::to_string(row) + ": expected " +
                               std::to_string(t.cols() + 1) + " values, found " + std::to_string(values.size()));
    }
    t.y.push_back(values.back());
    t.x.insert(t.x.end(), values.begin(), values.end() - 1);
  }
  return t;
}

// A seeded shuffle, so the split is the same on every run.
split_tables split(const table& t, double test_fraction, std::uint64_t seed) {
  std::vector<std::size_t> order(t.rows());
  std::iota(order.begin(), order.end(), 0);
  for (std::size_t i = order.size(); i > 1; --i) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    std::swap(order[i - 1], order[(seed >> 33) % i]);
  }
  const auto n_test = static_cast<std::size_t>(test_fraction * static_cast<double>(t.rows()));
  split_tables out{{t.features, {}, {}}, {t.features, {}, {}}};
  for (std::size_t k = 0; k < order.size(); ++k) {
    table& part = k < n_test ? out.test : out.train;
    const std::size_t r = order[k];
    part.x.insert(part.x.end(), t.x.begin() + static_cast<std::ptrdiff_t>(r * t.cols()),
                  t.x.begin() + static_cast<std::ptrdiff_t>((r + 1) * t.cols()));
    part.y.push_back(t.y[r]);
  }
  return out;
}

// Mean and standard deviation come from the training rows alone.
split_tables standardize(split_tables parts) {
  const std::size_t d = parts.train.cols();
  for (std::size_t j = 0; j < d; ++j) {
    double sum = 0, sq = 0;
    for (std::size_t r = 0; r < parts.train.rows(); ++r) {
      const double v = parts.train.x[r * d + j];
      sum += v;
      sq += v * v;
    }
    const double n = static_cast<double>(parts.train.rows());
    const double mean = sum / n;
    const double sd = std::sqrt(std::max(sq / n - mean * mean, 1e-12));
    for (table* t : {&parts.train, &parts.test})
      for (std::size_t r = 0; r < t->rows(); ++r) t->x[r * d + j] = static_cast<float>((t->x[r * d + j] - mean) / sd);
  }
  return parts;
}

float predict(const model& m, const float* row) {
  float z = m.bias;
  for (std::size_t j = 0; j < m.weights.size(); ++j) z += m.weights[j] * row[j];
  return 1.0f / (1.0f + std::exp(-z));
}

// Full-batch gradient descent on the log loss.
model train(ps::context& ctx, const table& t, float learning_rate, int epochs) {
  model m{std::vector<float>(t.cols(), 0.0f), 0.0f};
  std::vector<float> grad(t.cols());
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    ctx.throw_if_stop_requested();
    std::fill(grad.begin(), grad.end(), 0.0f);
    float grad_bias = 0, loss = 0;
    for (std::size_t r = 0; r < t.rows(); ++r) {
      const float* row = &t.x[r * t.cols()];
      const float p = predict(m, row);
      const float err = p - t.y[r];
      for (std::size_t j = 0; j < t.cols(); ++j) grad[j] += err * row[j];
      grad_bias += err;
      loss -= t.y[r] * std::log(p + 1e-7f) + (1 - t.y[r]) * std::log(1 - p + 1e-7f);
    }
    const float n = static_cast<float>(t.rows());
    for (std::size_t j = 0; j < t.cols(); ++j) m.weights[j] -= learning_rate * grad[j] / n;
    m.bias -= learning_rate * grad_bias / n;
    ctx.log_metric("loss", loss / n, epoch);
    if (epoch % std::max(1, epochs / 10) == 0 || epoch == epochs)
      ctx.log("epoch " + std::to_string(epoch) + " loss " + std::to_string(loss / n));
  }
  return m;
}

double accuracy(ps::context& ctx, const model& m, const table& t) {
  std::size_t right = 0;
  for (std::size_t r = 0; r < t.rows(); ++r) right += (predict(m, &t.x[r * t.cols()]) >= 0.5f) == (t.y[r] >= 0.5f);
  const double a = static_cast<double>(right) / static_cast<double>(t.rows());
  ctx.log_metric("accuracy", a);
  return a;
}

int main(int argc, char** argv) {
  auto path = ps::param<ps::file>("data");
  auto lr = ps::param<float>("lr", 0.5f);
  auto epochs = ps::param<int>("epochs", 300);

  auto data = ps::step<"load">(load_csv)(path);
  auto parts = ps::step<"split">(split)(data, 0.2, std::uint64_t{42});
  auto scaled = ps::step<"standardize">(standardize)(parts);
  auto fitted = ps::step<"train">(train)(ps::get<&split_tables::train>(scaled), lr, epochs);
  auto score = ps::step<"evaluate">(accuracy)(fitted, ps::get<&split_tables::test>(scaled));

  return ps::main(ps::pipeline<"churn">(score), argc, argv);
}
