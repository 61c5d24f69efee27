// A pipeline binary for the tracking tests that need processes
// (tracking_processes.sh): ps::main over
//   value ── square ── slow (sleeps `sleep_ms` in 10 ms slices, stopping
//                      early when asked; logs each slice and a metric) ── result
// `fail=1` makes slow throw.
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include <penstock/main.hpp>
#include <penstock/penstock.hpp>

namespace ps = penstock;

int main(int argc, char** argv) {
  auto value = ps::param<int>("value", 3);
  auto sleep_ms = ps::param<int>("sleep_ms", 0);
  auto fail = ps::param<int>("fail", 0);
  auto square = ps::step<"square">([](int v) { return v * v; })(value);
  auto slow = ps::step<"slow">([](ps::context& ctx, int x, int ms, int f) {
    if (f != 0) throw std::runtime_error("asked to fail");
    for (int slice = 0; slice * 10 < ms; ++slice) {
      ctx.throw_if_stop_requested();
      if (slice % 10 == 0) {
        ctx.log("slice " + std::to_string(slice));
        ctx.log_metric("progress", slice, slice);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ctx.log_metric("result", x + 1);
    return x + 1;
  })(square, sleep_ms, fail);
  auto result = ps::step<"result">([](int x) { return x; })(slow);
  return ps::main(ps::pipeline<"tracked">(result), argc, argv);
}
