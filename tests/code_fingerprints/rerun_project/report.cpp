// The step `report`, written in this file: its code fingerprint is this file's digest.
#include "steps.hpp"

std::string summarize(double model) { return "model " + std::to_string(model); }

const ps::step_definition<"report", decltype(&summarize)> report = ps::step<"report">(&summarize);
