// The step `other`, written in this file, independent of load -> train -> report.
#include "steps.hpp"

int count_other() { return 42; }

const ps::step_definition<"other", decltype(&count_other)> other = ps::step<"other">(&count_other);
