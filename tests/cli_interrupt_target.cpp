// A pipeline for the Ctrl-C test (cli_interrupt.sh): "wait" prints "ready"
// and then works until the run is asked to stop; "after" depends on it and
// must never start; "independent" has already finished.
#include <penstock/penstock.hpp>

#include <iostream>

namespace ps = penstock;

int main(int argc, char** argv) {
  auto independent = ps::step<"independent">([] { return 1; })();
  auto wait = ps::step<"wait">([](ps::context& ctx, int x) {
    std::cout << "ready" << std::endl;
    long spins = 0;
    while (!ctx.stop_requested()) ++spins;
    ctx.log("saw the stop after " + std::to_string(spins) + " polls");
    ctx.throw_if_stop_requested();
    return x;
  })(independent);
  auto after = ps::step<"after">([](int x) { return x + 1; })(wait);
  return ps::main(ps::pipeline<"interrupt">(after), argc, argv);
}
