// The step `train`, written in this file: its code fingerprint is this file's digest.
// run_rerun_after_edit.cmake edits the body of fit() between builds.
#include "steps.hpp"

double fit(const std::vector<double>& data) {
  double sum = 0.0;
  for (double x : data) sum += x;
  return sum * 2.0;
}

const ps::step_definition<"train", decltype(&fit)> train = ps::step<"train">(&fit);
