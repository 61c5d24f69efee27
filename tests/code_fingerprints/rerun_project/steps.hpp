// The steps of the pipeline, each written in its own source file.
//
// The recommended spelling for a step that lives in its own file: declare the
// step object here, define it in the step's .cpp with ps::step<...>(...), so
// that std::source_location records that .cpp (and its content digest is the
// step's code fingerprint):
//
//   // steps.hpp
//   double fit(const std::vector<double>& data);
//   extern const ps::step_definition<"train", decltype(&fit)> train;
//
//   // train.cpp (includes steps.hpp, which gives `train` external linkage)
//   double fit(const std::vector<double>& data) { ... }
//   const ps::step_definition<"train", decltype(&fit)> train = ps::step<"train">(&fit);
//
//   // main.cpp
//   auto model = train(load());
//
// Options go on the definition in the .cpp (ps::step<"train">(&fit).version(2)
// keeps the type); .cache(ps::never) changes it (a third template argument,
// ps::cache_policy::never), so declare that type here too. Use the objects
// from main() or other functions, not in another file's namespace-scope
// initializers: those may run before this file's.
#pragma once

#include <string>
#include <vector>

#include <penstock/penstock.hpp>

namespace ps = penstock;

std::vector<double> load_data();              // load.cpp
double fit(const std::vector<double>& data);  // train.cpp
std::string summarize(double model);          // report.cpp
int count_other();                            // other.cpp

extern const ps::step_definition<"load", decltype(&load_data)> load;
extern const ps::step_definition<"train", decltype(&fit)> train;
extern const ps::step_definition<"report", decltype(&summarize)> report;
extern const ps::step_definition<"other", decltype(&count_other)> other;
