// One function per target kind, and the file each one is written in.
#pragma once

int alpha(int x);  // alpha.cpp, in the executable
const char* alpha_file();
int beta(int x);  // beta.cpp, in a static library
const char* beta_file();
int delta(int x);  // delta.cpp, in a shared library
const char* delta_file();
