// step_tables: varint encodings of a run's structure, outcomes and timings;
// see step_tables.hpp.
#include "step_tables.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "cache_session.hpp"
#include "cache_store.hpp"

namespace penstock::detail::r1 {

namespace {

constexpr std::uint8_t structure_version = 1;
constexpr std::uint8_t outcomes_version = 1;
constexpr std::uint8_t timings_version = 1;

// Appends to a buffer sized for the worst case up front (a varint is at
// most 10 bytes): no per-byte growth checks. The buffer is not zeroed: of a
// 10,000-step table's worst case (630 KB) a few tens of KB are written, and
// only the pages written are touched.
class writer {
 public:
  explicit writer(std::size_t most) : buffer_(new char[most]), at_(buffer_.get()) {}
  void varint(std::uint64_t v) noexcept {
    while (v >= 0x80) {
      *at_++ = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    *at_++ = static_cast<char>(v);
  }
  void byte(std::uint8_t b) noexcept { *at_++ = static_cast<char>(b); }
  void hash(const digest& d) noexcept {
    for (int i = 7; i >= 0; --i) *at_++ = static_cast<char>(d.high >> (8 * i));
    for (int i = 7; i >= 0; --i) *at_++ = static_cast<char>(d.low >> (8 * i));
  }
  void text(std::string_view t) noexcept {
    std::memcpy(at_, t.data(), t.size());
    at_ += t.size();
  }
  std::string finish() const { return {buffer_.get(), static_cast<std::size_t>(at_ - buffer_.get())}; }

 private:
  std::unique_ptr<char[]> buffer_;
  char* at_;
};

constexpr std::size_t most_varint = 10;
// An outcome: its flags byte, attempts, two digests, two counts.
constexpr std::size_t most_outcome = 1 + 3 * most_varint + 32;

void put_outcome(writer& out, recorded status, std::uint32_t attempts, const digest* key, const digest* output,
                 std::uint64_t elements, std::uint64_t elements_cached) noexcept {
  // status in the low 3 bits; 8: a key follows, 16: an output digest; 32: element counts.
  const bool counts = elements != 0 || elements_cached != 0;
  out.byte(static_cast<std::uint8_t>(static_cast<std::uint8_t>(status) | (key != nullptr ? 8 : 0) |
                                     (output != nullptr ? 16 : 0) | (counts ? 32 : 0)));
  out.varint(attempts);
  if (key != nullptr) out.hash(*key);
  if (output != nullptr) out.hash(*output);
  if (counts) {
    out.varint(elements);
    out.varint(elements_cached);
  }
}

// A timing: worker + 1 (0: did not compute, nothing follows), then its start
// as its distance from the previous computed step's (zigzag: it may be
// earlier), which in pipeline order is short: most steps take 1 or 2 bytes;
// then its duration.
void put_timing(writer& out, int worker, std::chrono::nanoseconds started, std::chrono::nanoseconds duration,
                std::int64_t& previous) noexcept {
  out.varint(static_cast<std::uint64_t>(std::max(worker, -1) + 1));
  if (worker < 0) return;
  const std::int64_t start = std::max<std::int64_t>(started.count(), 0);
  const std::int64_t delta = start - previous;
  previous = start;
  out.varint((static_cast<std::uint64_t>(delta) << 1) ^ static_cast<std::uint64_t>(delta >> 63));
  out.varint(static_cast<std::uint64_t>(std::max<std::int64_t>(duration.count(), 0)));
}

// Reads what put() wrote, checking each length.
class reader {
 public:
  reader(std::string_view bytes, const char* what) : bytes_(bytes), what_(what) {}
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= bytes_.size()) bad("ends inside a number");
      const auto byte = static_cast<unsigned char>(bytes_[at_++]);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    bad("has a number longer than 64 bits");
  }
  std::uint32_t index(std::uint64_t below) {
    const std::uint64_t v = varint();
    if (v >= below) bad(fmt::format("names step {} of {}", v, below));
    return static_cast<std::uint32_t>(v);
  }
  std::uint8_t byte() {
    if (at_ >= bytes_.size()) bad("ends early");
    return static_cast<std::uint8_t>(bytes_[at_++]);
  }
  std::string_view text(std::size_t n) {
    if (bytes_.size() - at_ < n) bad("ends inside a name");
    const auto t = bytes_.substr(at_, n);
    at_ += n;
    return t;
  }
  digest hash() {
    const auto t = text(16);
    digest d;
    for (int i = 0; i < 8; ++i) d.high = (d.high << 8) | static_cast<unsigned char>(t[i]);
    for (int i = 8; i < 16; ++i) d.low = (d.low << 8) | static_cast<unsigned char>(t[i]);
    return d;
  }
  // A count of items each at least `min_bytes` long: no more than what is left can hold.
  std::size_t count(std::size_t min_bytes) {
    const std::uint64_t n = varint();
    if (n > (bytes_.size() - at_) / std::max<std::size_t>(min_bytes, 1)) bad("counts more items than it holds");
    return static_cast<std::size_t>(n);
  }
  void version(std::uint8_t expected) {
    if (const auto v = byte(); v != expected) bad(fmt::format("is of version {}, not {}", v, expected));
  }
  void done() const {
    if (at_ != bytes_.size()) bad("has bytes after its end");
  }
  [[noreturn]] void bad(const std::string& why) const {
    throw cache_error(fmt::format("a run's {} table in the workspace {}: it is damaged", what_, why));
  }

 private:
  std::string_view bytes_;
  const char* what_;
  std::size_t at_ = 0;
};

}  // namespace

recorded recorded_status(const step_report& step) noexcept {
  if (step.cache_hit) return recorded::cached;
  switch (step.status) {
    case step_status::succeeded: return recorded::ran;
    case step_status::failed:
    case step_status::timed_out: return recorded::failed;
    case step_status::skipped: return recorded::skipped;
    case step_status::cancelled:
    case step_status::not_run: return recorded::cancelled;
  }
  return recorded::failed;
}

const char* to_string(recorded r) noexcept {
  switch (r) {
    case recorded::ran: return "ran";
    case recorded::cached: return "cached";
    case recorded::failed: return "failed";
    case recorded::skipped: return "skipped";
    case recorded::cancelled: return "cancelled";
  }
  return "unknown";
}

std::string encode_structure(const graph_description& graph) {
  std::vector<std::string> names;
  names.reserve(graph.nodes.size());
  std::size_t most = 1 + most_varint;
  for (const auto& node : graph.nodes) {
    names.push_back(printable(node.name));
    most += 2 * most_varint + names.back().size() + node.inputs.size() * most_varint;
  }
  writer out(most);
  out.byte(structure_version);
  out.varint(graph.nodes.size());
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    out.varint(names[i].size());
    out.text(names[i]);
    const auto& node = graph.nodes[i];
    std::uint64_t from_nodes = 0;
    for (const auto& in : node.inputs) from_nodes += in.kind == input_kind::node ? 1 : 0;
    out.varint(from_nodes);
    for (const auto& in : node.inputs)
      if (in.kind == input_kind::node) out.varint(in.index);
  }
  return out.finish();
}

structure_table decode_structure(std::string_view bytes) {
  reader r(bytes, "structure");
  r.version(structure_version);
  structure_table t;
  const std::size_t n = r.count(2);
  t.names.reserve(n);
  t.inputs.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    t.names.emplace_back(r.text(r.count(1)));
    const std::size_t inputs = r.count(1);
    for (std::size_t j = 0; j < inputs; ++j) t.inputs[i].push_back(r.index(n));
  }
  r.done();
  return t;
}

std::vector<step_outcome> decode_outcomes(std::string_view bytes) {
  reader r(bytes, "outcomes");
  r.version(outcomes_version);
  std::vector<step_outcome> steps(r.count(2));
  for (auto& s : steps) {
    const std::uint8_t flags = r.byte();
    if ((flags & 7) > static_cast<std::uint8_t>(recorded::cancelled) || (flags & ~63) != 0)
      r.bad("has an unknown status");
    s.status = static_cast<recorded>(flags & 7);
    s.attempts = static_cast<std::uint32_t>(r.varint());
    if ((flags & 8) != 0) s.key = r.hash();
    if ((flags & 16) != 0) s.output = r.hash();
    if ((flags & 32) != 0) {
      s.elements = r.varint();
      s.elements_cached = r.varint();
    }
  }
  r.done();
  return steps;
}

std::vector<step_timing> decode_timings(std::string_view bytes) {
  reader r(bytes, "timings");
  r.version(timings_version);
  std::vector<step_timing> steps(r.count(1));
  std::int64_t previous = 0;
  for (auto& s : steps) {
    const std::uint64_t worker = r.varint();
    if (worker > (1u << 20)) r.bad("names a worker beyond any arena");
    s.worker = static_cast<int>(worker) - 1;
    if (s.worker < 0) continue;
    const std::uint64_t zigzag = r.varint();
    const auto delta = static_cast<std::int64_t>(zigzag >> 1) ^ -static_cast<std::int64_t>(zigzag & 1);
    previous = static_cast<std::int64_t>(static_cast<std::uint64_t>(previous) + static_cast<std::uint64_t>(delta));
    if (previous < 0) r.bad("has a step that starts before the run");
    s.started = std::chrono::nanoseconds(previous);
    s.duration = std::chrono::nanoseconds(static_cast<std::int64_t>(r.varint() & 0x7fffffffffffffffu));
  }
  r.done();
  return steps;
}

report_tables encode_report(std::span<const step_report> steps) {
  writer outcomes(1 + most_varint + steps.size() * most_outcome);
  writer timings(1 + most_varint + steps.size() * 3 * most_varint);
  outcomes.byte(outcomes_version);
  outcomes.varint(steps.size());
  timings.byte(timings_version);
  timings.varint(steps.size());
  report_tables t;
  std::int64_t previous = 0;
  for (std::uint32_t i = 0; i < steps.size(); ++i) {
    const step_report& s = steps[i];
    const recorded status = recorded_status(s);
    put_outcome(outcomes, status, s.attempts, s.key ? &*s.key : nullptr, s.output ? &*s.output : nullptr, s.elements,
                s.elements_cached);
    put_timing(timings, s.cache_hit ? -1 : s.worker, s.started, s.duration, previous);
    if (!s.error.empty()) t.errors.emplace_back(i, printable(s.error));
    t.computed += status == recorded::ran ? 1 : 0;
    t.cached += status == recorded::cached ? 1 : 0;
    t.failed += status == recorded::failed ? 1 : 0;
  }
  t.outcomes = outcomes.finish();
  t.timings = timings.finish();
  return t;
}

}  // namespace penstock::detail::r1
