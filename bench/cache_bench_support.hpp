// What the step-cache benchmarks (issue 3) share: a hand-lowered graph whose
// nodes the cache can key (cached_graph), the 100 × 100 chains they run, a
// scratch directory, and the equivalent ninja project with a way to run
// ninja from the benchmark process.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <penstock/digest.hpp>
#include <penstock/graph_description.hpp>
#include <penstock/param.hpp>

#include "hand_lowered_graph.hpp"

extern char** environ;

namespace penstock_bench {

// Concatenates strings by appending: "k" + std::to_string(i) trips g++ 12's
// false -Wrestrict at -O2 (see runtime_name in hand_lowered_graph.hpp).
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

// --- a graph the cache can key ----------------------------------------------

inline penstock::input_description node_input(std::uint32_t producer) {
  return {.kind = penstock::input_kind::node, .index = producer, .type = "int", .projection = {}};
}
inline penstock::input_description param_input(std::uint32_t param) {
  return {.kind = penstock::input_kind::param, .index = param, .type = "int", .projection = {}};
}

// hand_lowered_graph's twin with what the step cache needs filled in, as the
// DSL fills it: an identity per node (XXH3 of its name: distinct per node),
// cacheable = true, options.cache normal (the default), and int slots with
// hash / save / load (slot_functions_for<int>). Inputs may be int parameters.
class cached_graph {
 public:
  explicit cached_graph(std::string name) : name_(std::move(name)) {}
  cached_graph(const cached_graph&) = delete;
  cached_graph& operator=(const cached_graph&) = delete;

  // An int parameter (no default: every run passes its value).
  std::uint32_t add_param(std::string name) {
    param_nodes_.emplace_back(std::move(name));
    params_.push_back(param_nodes_.back().describe());
    return static_cast<std::uint32_t>(params_.size() - 1);
  }

  // Appends a node running `fn` (which must outlive the graph) on `inputs`
  // (earlier nodes or parameters); nodes go in topological order.
  template <std::size_t Arity, class F>
  std::uint32_t add(std::string name, const F& fn, const std::array<penstock::input_description, Arity>& inputs) {
    names_.push_back(std::move(name));
    first_input_.push_back(inputs_.size());
    for (const auto& in : inputs) inputs_.push_back(in);
    nodes_.push_back(
        {.name = names_.back(),
         .kind = penstock::node_kind::step,
         .output_type = "int",
         .inputs = {},  // set by description()
         .options = {},
         .identity = penstock::hasher().update(std::string_view("penstock_bench node")).update(names_.back()).finish(),
         .cacheable = true,
         .step = &fn,
         .run = &run_int_step<F, Arity>,
         .slot = penstock::detail::slot_functions_for<int>()});
    return static_cast<std::uint32_t>(nodes_.size() - 1);
  }

  void mark_output(std::uint32_t node) { outputs_.push_back(node); }

  // Valid while this object lives and no node is added.
  [[nodiscard]] const penstock::graph_description& description() {
    first_input_.push_back(inputs_.size());
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      nodes_[i].inputs = std::span<const penstock::input_description>(inputs_).subspan(
          first_input_[i], first_input_[i + 1] - first_input_[i]);
    first_input_.pop_back();
    description_ = {.name = name_, .nodes = nodes_, .params = params_, .outputs = outputs_};
    return description_;
  }

  [[nodiscard]] std::size_t size() const noexcept { return nodes_.size(); }

 private:
  std::string name_;
  std::deque<std::string> names_;  // node names point into it
  std::deque<penstock::param_node<int>> param_nodes_;
  std::vector<penstock::param_description> params_;
  std::vector<std::size_t> first_input_;
  std::vector<penstock::input_description> inputs_;
  std::vector<penstock::node_description> nodes_;
  std::vector<std::uint32_t> outputs_;
  penstock::graph_description description_;
};

// The steps. Each passes an int: x + 1, so that every step of a chain holds a
// different value (and a recomputed chain writes new blobs, see below).
struct constant_source {
  int value = 0;
  int operator()() const noexcept { return value; }
};
struct from_param {
  int operator()(int x) const noexcept { return x; }
};
struct pass_on {
  int operator()(int x) const noexcept { return x + 1; }
};

inline constexpr from_param from_param_step{};
inline constexpr pass_on pass_on_step{};

// `chains` independent chains of `length` steps, "k<chain>_<step>". Chain 0's
// head reads the int parameter "head"; chain k's head (k > 0) returns k. Every
// chain's last step is an output. Values: chain k holds k, k+1, ..., chain 0
// holds head, head+1, ...: a new head value at least `length` away from every
// earlier one makes each of chain 0's steps a real miss with a new blob.
class chains_graph {
 public:
  // outputs = false: no step is an output, so a fully cached run loads no
  // value at all (a diagnostic variant; the benchmarks' pipeline has outputs).
  chains_graph(std::size_t chains, std::size_t length, bool outputs = true) : graph_("chains") {
    sources_.reserve(chains);
    for (std::size_t k = 0; k < chains; ++k) sources_.push_back({static_cast<int>(k)});
    const std::uint32_t head = graph_.add_param("head");
    for (std::size_t k = 0; k < chains; ++k) {
      const std::string prefix = concat("k", std::to_string(k), "_");
      std::uint32_t last = k == 0 ? graph_.add<1>(concat(prefix, "0"), from_param_step, {param_input(head)})
                                  : graph_.add<0>(concat(prefix, "0"), sources_[k], {});
      for (std::size_t i = 1; i < length; ++i)
        last = graph_.add<1>(concat(prefix, std::to_string(i)), pass_on_step, {node_input(last)});
      if (outputs) graph_.mark_output(last);
    }
    description_ = &graph_.description();
  }
  [[nodiscard]] const penstock::graph_description& description() const noexcept { return *description_; }
  [[nodiscard]] std::size_t size() const noexcept { return graph_.size(); }

 private:
  std::vector<constant_source> sources_;  // reserved up front: nodes point at them
  cached_graph graph_;
  const penstock::graph_description* description_ = nullptr;
};

// --- scratch directory -------------------------------------------------------

// A fresh directory under `parent` (the system's temporary directory unless
// given), removed with everything in it when the object goes.
class scratch_directory {
 public:
  explicit scratch_directory(const std::string& tag, std::filesystem::path parent = {}) {
    if (parent.empty()) parent = std::filesystem::temp_directory_path();
    std::string pattern = (parent / concat("penstock-bench-", tag, "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed under " + parent.string());
    path_ = pattern;
  }
  scratch_directory(const scratch_directory&) = delete;
  scratch_directory& operator=(const scratch_directory&) = delete;
  ~scratch_directory() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// --- ninja ----------------------------------------------------------------

// Runs a program (looked up in PATH) with stdout and stderr going to
// `output` (a file, /dev/null by default) and returns its exit status, or -1
// if it could not be started or did not exit normally.
inline int run_program(const std::vector<std::string>& args, const std::string& output = "/dev/null") {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_text(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + file.string());
}

// The ninja equivalent of chains_graph: `chains` chains of `length` edges,
// each edge `cp $in $out`, chain k reading in/k<k> (a real small file) and
// writing out/k<k>_0, ..., out/k<k>_<length-1>. build() runs ninja once.
class ninja_project {
 public:
  ninja_project(std::size_t chains, std::size_t length) : dir_("ninja"), chains_(chains), length_(length) {
    std::filesystem::create_directories(dir_.path() / "in");
    std::filesystem::create_directories(dir_.path() / "out");
    std::string text = "rule step\n  command = cp $in $out\n\n";
    for (std::size_t k = 0; k < chains; ++k) {
      write_text(dir_.path() / "in" / concat("k", std::to_string(k)), concat("chain ", std::to_string(k), "\n"));
      std::string previous = concat("in/k", std::to_string(k));
      for (std::size_t i = 0; i < length; ++i) {
        std::string out = concat("out/k", std::to_string(k), "_", std::to_string(i));
        text += concat("build ", out, ": step ", previous, "\n");
        previous = std::move(out);
      }
    }
    write_text(dir_.path() / "build.ninja", text);
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return dir_.path(); }
  [[nodiscard]] std::size_t edges() const noexcept { return chains_ * length_; }
  [[nodiscard]] std::filesystem::path head_input(std::size_t chain) const {
    return dir_.path() / "in" / concat("k", std::to_string(chain));
  }
  [[nodiscard]] std::filesystem::path tail_output(std::size_t chain) const {
    return dir_.path() / "out" / concat("k", std::to_string(chain), "_", std::to_string(length_ - 1));
  }

  // `ninja -C <dir>`, its output to `output`; its exit status.
  int ninja(const std::string& output = "/dev/null") const {
    return run_program({"ninja", "-C", dir_.path().string()}, output);
  }

  // Runs ninja with its output captured; returns it, or throws if ninja failed.
  std::string ninja_captured() const {
    const auto log = dir_.path() / "ninja-output.txt";
    const int rc = ninja(log.string());
    std::string text = read_text(log);
    if (rc != 0) throw std::runtime_error(concat("ninja exited with status ", std::to_string(rc), ": ", text));
    return text;
  }

 private:
  scratch_directory dir_;
  std::size_t chains_;
  std::size_t length_;
};

}  // namespace penstock_bench
