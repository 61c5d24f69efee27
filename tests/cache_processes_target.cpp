// A pipeline for the multi-process step-cache tests (cache_processes.sh).
// Every step body, when it starts, appends one line "<step> <pid>" to the
// file named by $PENSTOCK_TEST_LOG (a map element appends "square:<x> <pid>"),
// with O_APPEND and one write() per line, so concurrent processes never
// interleave their lines and a test sees which steps ran in which process.
//
//   n ── source ── slow ──┬── left ──┬── join ──┐
//   work ──────────┘      └── right ─┘          │
//   n ── bucket ── tag ─────────────────────────┼── report
//   n ── shards ── square (ps::map, 20) ── total ┘
//
// source and slow are 800 KB vectors (their blobs take a while to write);
// slow first makes `work` passes of real computation over its input (no
// sleep), whose result is not part of its value: its value does not depend
// on work. bucket is n / 10, so changing n within a decade reruns bucket but
// not tag (early cutoff). shards is {n, ..., n + 19}: changing n by one
// computes one new map element. Outputs: report and total.
//
// $PENSTOCK_TEST_GATE, when set, names two FIFOs the test made: the process
// writes a line to "<gate>.ready", then opens "<gate>" for reading, which
// blocks until the test opens it for writing. No polling: the test reads one
// line per process, then opens the gate, so several runs start together.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <penstock/penstock.hpp>

namespace ps = penstock;

namespace {

void log_ran(std::string_view what) {
  const char* path = std::getenv("PENSTOCK_TEST_LOG");
  if (path == nullptr || *path == '\0') return;
  const std::string line = std::string(what) + " " + std::to_string(::getpid()) + "\n";
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + std::string(path));
  const auto written = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) throw std::runtime_error("cannot append to " + std::string(path));
}

void wait_at_gate() {
  const char* gate = std::getenv("PENSTOCK_TEST_GATE");
  if (gate == nullptr || *gate == '\0') return;
  const std::string ready = std::string(gate) + ".ready";
  const std::string line = std::to_string(::getpid()) + "\n";
  const int out = ::open(ready.c_str(), O_WRONLY | O_CLOEXEC);
  if (out < 0 || ::write(out, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    throw std::runtime_error("cannot write to " + ready);
  ::close(out);
  const int in = ::open(gate, O_RDONLY | O_CLOEXEC);  // blocks until the test opens the gate
  if (in < 0) throw std::runtime_error("cannot open " + std::string(gate));
  ::close(in);
}

// Where busy() leaves its result, so the compiler cannot drop the work.
volatile unsigned long busy_sink = 0;

// `passes` rounds of a multiplicative hash over v: real work for the kill -9
// and lease tests to land in, kept out of the step's value.
void busy(const std::vector<long>& v, long passes) {
  unsigned long acc = 0;
  for (long r = 0; r < passes; ++r)
    for (long x : v) acc = (acc ^ static_cast<unsigned long>(x)) * 0x9e3779b97f4a7c15ul;
  busy_sink = acc;
}

constexpr std::size_t source_size = 100'000;

}  // namespace

int main(int argc, char** argv) {
  auto n = ps::param<long>("n", 3);
  auto work = ps::param<long>("work", 0);

  auto source = ps::step<"source">([](long k) {
    log_ran("source");
    std::vector<long> v(source_size);
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<long>((i * static_cast<std::size_t>(2 * k + 1) * 2654435761u) % 1'000'003u);
    return v;
  })(n);
  auto slow = ps::step<"slow">([](const std::vector<long>& v, long passes) {
    log_ran("slow");
    busy(v, passes);
    std::vector<long> w(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) w[i] = v[i] ^ static_cast<long>(i & 0xff);
    return w;
  })(source, work);
  auto left = ps::step<"left">([](const std::vector<long>& w) {
    log_ran("left");
    long sum = 0;
    for (std::size_t i = 0; i < w.size(); i += 2) sum += w[i];
    return sum;
  })(slow);
  auto right = ps::step<"right">([](const std::vector<long>& w) {
    log_ran("right");
    long sum = 0;
    for (std::size_t i = 1; i < w.size(); i += 2) sum += w[i];
    return sum;
  })(slow);
  auto join = ps::step<"join">([](long l, long r) {
    log_ran("join");
    return 3 * l - r;
  })(left, right);

  auto bucket = ps::step<"bucket">([](long k) {
    log_ran("bucket");
    return k / 10;
  })(n);
  auto tag = ps::step<"tag">([](long b) {
    log_ran("tag");
    return "bucket " + std::to_string(b);
  })(bucket);

  auto shards = ps::step<"shards">([](long k) {
    log_ran("shards");
    std::vector<long> v(20);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = k + static_cast<long>(i);
    return v;
  })(n);
  auto square = ps::map<"square">([](long x) {
    log_ran("square:" + std::to_string(x));
    long y = 0;
    for (long i = 0; i < 1000; ++i) y = (y + x * x + i) % 1'000'000'007L;
    return y;
  })(shards);
  auto total = ps::step<"total">([](const std::vector<long>& v) {
    log_ran("total");
    long sum = 0;
    for (long x : v) sum += x;
    return sum;
  })(square);

  auto report = ps::step<"report">([](long j, const std::string& t, long s) {
    log_ran("report");
    return "join " + std::to_string(j) + ", " + t + ", total " + std::to_string(s);
  })(join, tag, total);

  wait_at_gate();
  return ps::main(ps::pipeline<"processes">(report, total), argc, argv);
}
