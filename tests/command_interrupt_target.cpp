// A pipeline for the command Ctrl-C test (command_interrupt.sh): "long"
// starts a child that ignores SIGTERM, writes its pid to $PID_FILE, says
// "ready" and waits; "after" depends on it and must never start.
#include <penstock/penstock.hpp>

#include <chrono>
#include <string>

namespace ps = penstock;

int main(int argc, char** argv) {
  auto waited = ps::command<"long">("/bin/sh", "-c",
                                    "(trap '' TERM; exec sleep 1000) & echo $! > \"$PID_FILE\"; echo ready; wait; "
                                    "touch \"$1\"",
                                    "sh", ps::output_file("never"))
                    .grace(std::chrono::milliseconds(300));
  auto after = ps::step<"after">([](const ps::file& f) { return f.name(); })(waited);
  return ps::main(ps::pipeline<"command_interrupt">(after), argc, argv);
}
