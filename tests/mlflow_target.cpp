// A pipeline binary for the MLflow round trip (mlflow_roundtrip.sh):
// ps::main over
//   rows ── train (logs `loss` for each of `epochs` epochs, and a line per
//           100 epochs) ── evaluate (logs `accuracy`; throws when fail=1) ── report
// with parameters lr, epochs, fail and a name that MLflow does not take as it is.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <penstock/main.hpp>
#include <penstock/penstock.hpp>

namespace ps = penstock;

int main(int argc, char** argv) {
  auto lr = ps::param<double>("lr", 0.1);
  auto epochs = ps::param<int>("epochs", 5);
  auto fail = ps::param<int>("fail", 0);
  auto label = ps::param<std::string>("label:name", "demo");
  auto rows = ps::step<"rows">([](const std::string& name) {
    std::vector<double> out;
    for (int i = 0; i < 100; ++i) out.push_back(static_cast<double>(i % 7) + static_cast<double>(name.size()));
    return out;
  })(label);
  auto train = ps::step<"train">([](ps::context& ctx, const std::vector<double>& data, double rate, int n) {
    double loss = 1.0;
    for (int epoch = 0; epoch < n; ++epoch) {
      loss *= 1.0 - rate / 2;
      ctx.log_metric("loss", loss, epoch);
      if (epoch % 100 == 0) ctx.log("epoch " + std::to_string(epoch));
    }
    return loss * static_cast<double>(data.size());
  })(rows, lr, epochs);
  auto evaluate = ps::step<"evaluate">([](ps::context& ctx, double model, int f) {
    if (f != 0) throw std::runtime_error("asked to fail");
    const double accuracy = 1.0 / (1.0 + std::abs(model) / 100);
    ctx.log_metric("accuracy", accuracy);
    return accuracy;
  })(train, fail);
  auto report = ps::step<"report">([](double accuracy) { return std::to_string(accuracy); })(evaluate);
  return ps::main(ps::pipeline<"mlflow_demo">(report), argc, argv);
}
