// report(train(load())) and an independent step `other`; no step is written
// here, so editing this file changes no step's code fingerprint.
#include "steps.hpp"

int main(int argc, char** argv) {
  auto summary = report(train(load()));
  auto side = other();
  return ps::main(ps::pipeline<"fp">(summary, side), argc, argv);
}
