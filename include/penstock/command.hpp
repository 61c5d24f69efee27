// ps::command<"name">(argv...): a program in any language as a typed, cached
// step. Its arguments are, in order, the command line:
//   - literals ("python3", "--seed", 7) are passed as written;
//   - nodes and parameters of ps::file, ps::directory, std::string,
//     std::filesystem::path, bool or a number are passed as their value (a
//     file or directory as its absolute path);
//   - ps::source("featurize.py") is a file or directory whose content is part
//     of the key, passed as its absolute path (the script itself);
//   - ps::output_file("features.csv") / ps::output_dir("plots") declare what
//     the command produces, passed as the path it must write. They are the
//     node's value: one output gives a node<ps::file> (or ps::directory),
//     several a node of a std::tuple of them, split with ps::get<I>.
// The command is spawned without a shell (argv arrives verbatim) in a fresh
// working directory per attempt, in its own process group, with the
// caller's environment plus the variables it declares. Its stdout and stderr
// lines go to the step's log; a stdout line
//   penstock:metric NAME=VALUE [step=N]
// is a metric of the step, as ctx.log_metric in a C++ step. Its key is the
// argv, the content of every input and declared source, the declared
// environment, the resolved program's content and the .version().
//
//   auto features = ps::command<"featurize">("python3", ps::source("featurize.py"),
//                                            "--in", raw, "--out", ps::output_file("features.csv"))
//                       .env("PYTHONHASHSEED", "0");
#pragma once

#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <penstock/detail/arguments.hpp>
#include <penstock/detail/command_instance.hpp>
#include <penstock/detail/command_spec.hpp>
#include <penstock/detail/slot.hpp>
#include <penstock/detail/type_name.hpp>
#include <penstock/error.hpp>
#include <penstock/file.hpp>
#include <penstock/fixed_string.hpp>
#include <penstock/node.hpp>
#include <penstock/options.hpp>
#include <penstock/param.hpp>
#include <penstock/value_traits.hpp>

namespace penstock {

// A file the command writes, at the path passed for it (inside the
// attempt's working directory). `name` is a relative path without "..".
struct output_file {
  explicit output_file(std::string file_name) : name(std::move(file_name)) {}
  std::string name;
};
// A directory the command fills; penstock makes it (empty) before the
// command starts.
struct output_dir {
  explicit output_dir(std::string dir_name) : name(std::move(dir_name)) {}
  std::string name;
};
// A file or directory read by the command whose content is part of its key;
// relative paths are taken from the current directory when it is declared.
struct source {
  explicit source(std::filesystem::path source_path) : path(std::move(source_path)) {}
  std::filesystem::path path;
};

template <fixed_string Name, class R>
class command_node;
template <fixed_string Name, class R>
inline constexpr bool is_node_v<command_node<Name, R>> = true;

namespace detail {

template <class T>
inline constexpr bool is_param_v = false;
template <class T>
inline constexpr bool is_param_v<param_node<T>> = true;

// The types a command's node or parameter argument may carry.
template <class T>
inline constexpr bool command_value_v = std::is_same_v<T, std::string> || std::is_same_v<T, std::filesystem::path> ||
                                        std::is_arithmetic_v<T> || is_path_value_v<T>;

template <class T>
std::string number_text(T value) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc() ? std::string(buffer, end) : std::string();
}

template <class T>
std::string argument_text(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return value;
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return value.string();
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_arithmetic_v<T>) {
    return number_text(value);
  } else {
    return std::filesystem::absolute(value.path()).string();
  }
}

template <class PV, class Proj, class T>
std::string node_argument_text(const void* slot) {
  const auto& whole = **static_cast<const std::optional<PV>*>(slot);
  return argument_text<T>(Proj::apply(whole));
}
template <class T>
std::string param_argument_text(const void* slot) {
  return argument_text<T>(**static_cast<const std::optional<T>*>(slot));
}

// What each argument is to the command line.
enum class command_arg_kind : std::uint8_t { literal, number, input, output_file, output_dir, source, unsupported };

template <class A>
constexpr command_arg_kind command_arg_kind_of() {
  using T = std::remove_cvref_t<A>;
  if constexpr (std::is_same_v<T, output_file>) {
    return command_arg_kind::output_file;
  } else if constexpr (std::is_same_v<T, output_dir>) {
    return command_arg_kind::output_dir;
  } else if constexpr (std::is_same_v<T, source> || is_path_value_v<T>) {
    return command_arg_kind::source;  // a ps::file constant is keyed by content too
  } else if constexpr (is_node_v<T> || is_param_v<T>) {
    return command_value_v<typename T::value_type> ? command_arg_kind::input : command_arg_kind::unsupported;
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return command_arg_kind::literal;
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return command_arg_kind::literal;
  } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, char>) {
    return command_arg_kind::number;
  } else {
    return command_arg_kind::unsupported;
  }
}

// Index of the first argument a command cannot pass, or sizeof...(Args).
template <class... Args>
constexpr std::size_t first_unsupported_command_arg() {
  constexpr std::array<bool, sizeof...(Args) + 1> bad{(command_arg_kind_of<Args>() == command_arg_kind::unsupported)...,
                                                      true};
  std::size_t i = 0;
  while (!bad[i]) ++i;
  return i;
}

// The output types, in order, as a std::tuple.
template <class A>
using command_output_tuple_t = std::conditional_t<
    command_arg_kind_of<A>() == command_arg_kind::output_file, std::tuple<file>,
    std::conditional_t<command_arg_kind_of<A>() == command_arg_kind::output_dir, std::tuple<directory>, std::tuple<>>>;
template <class... Args>
using command_outputs_t = decltype(std::tuple_cat(std::declval<command_output_tuple_t<Args>>()...));

// The node's value: the one output, or a tuple of them.
template <class Outputs>
struct command_result {
  using type = Outputs;
};
template <class T>
struct command_result<std::tuple<T>> {
  using type = T;
};
template <class... Args>
using command_result_t = typename command_result<command_outputs_t<Args...>>::type;

template <class R>
void set_command_output(void* slot, const std::vector<std::filesystem::path>& paths) {
  auto& out = *static_cast<std::optional<R>*>(slot);
  if constexpr (is_path_value_v<R>) {
    out.emplace(paths.at(0));
  } else {
    out.emplace([&]<std::size_t... I>(std::index_sequence<I...>) {
      return R(std::tuple_element_t<I, R>(paths.at(I))...);
    }(std::make_index_sequence<std::tuple_size_v<R>>{}));
  }
}

template <class R>
const command_output_type& command_output_type_of() {
  static const command_output_type type{
      .name = display_name<R>(), .fingerprint = value_traits<R>::type_fingerprint(), .slot = slot_functions_for<R>()};
  return type;
}

// A relative path inside the working directory, not escaping it.
inline void check_output_name(std::string_view step, const std::string& name) {
  const std::filesystem::path p(name);
  bool escapes = name.empty() || p.is_absolute();
  for (const auto& part : p) escapes = escapes || part == "..";
  if (escapes) {
    throw std::invalid_argument("command '" + std::string(step) + "': output '" + name +
                                "' must be a relative path inside its working directory (no '..')");
  }
}

template <class A>
void add_command_argument(std::string_view step, A&& arg, command_spec& spec, std::vector<command_input>& inputs) {
  using T = std::remove_cvref_t<A>;
  constexpr command_arg_kind kind = command_arg_kind_of<A>();
  if constexpr (kind == command_arg_kind::literal) {
    if constexpr (std::is_same_v<T, std::filesystem::path>) {
      spec.argv.push_back({.kind = command_part_kind::literal, .text = arg.string()});
    } else {
      spec.argv.push_back({.kind = command_part_kind::literal, .text = std::string(std::string_view(arg))});
    }
  } else if constexpr (kind == command_arg_kind::number) {
    spec.argv.push_back({.kind = command_part_kind::literal, .text = argument_text<T>(arg)});
  } else if constexpr (kind == command_arg_kind::output_file || kind == command_arg_kind::output_dir) {
    check_output_name(step, arg.name);
    for (const auto& o : spec.outputs) {
      if (o.name == arg.name) {
        throw std::invalid_argument("command '" + std::string(step) + "': output '" + arg.name + "' is declared twice");
      }
    }
    spec.argv.push_back(
        {.kind = command_part_kind::output, .text = {}, .index = static_cast<std::uint32_t>(spec.outputs.size())});
    spec.outputs.push_back(
        {.name = arg.name, .kind = kind == command_arg_kind::output_file ? path_kind::file : path_kind::directory});
  } else if constexpr (kind == command_arg_kind::source) {
    std::filesystem::path where;
    if constexpr (std::is_same_v<T, source>) {
      where = arg.path;
    } else {
      where = arg.raw_path();
    }
    spec.argv.push_back(
        {.kind = command_part_kind::source, .text = {}, .index = static_cast<std::uint32_t>(spec.sources.size())});
    spec.sources.push_back({.path = std::filesystem::absolute(where), .glob = {}});
  } else if constexpr (kind == command_arg_kind::input) {
    using V = typename T::value_type;
    command_input in;
    if constexpr (is_node_v<T>) {
      in.kind = input_kind::node;
      in.producer = arg.producer();
      in.projection = T::projection_type::label;
      spec.input_text.push_back(
          &node_argument_text<typename T::producer_type::output_type, typename T::projection_type, V>);
    } else {
      in.kind = input_kind::param;
      in.param = arg.describe();
      in.param_state = std::make_shared<const T>(arg);
      spec.input_text.push_back(&param_argument_text<V>);
    }
    in.type = display_name<V>();
    spec.argv.push_back(
        {.kind = command_part_kind::input, .text = {}, .index = static_cast<std::uint32_t>(inputs.size())});
    inputs.push_back(std::move(in));
  }
}

}  // namespace detail

// What ps::command returns: a node of its output, with the declarations a
// command takes. Each returns a new node; use the one you declared last.
template <fixed_string Name, class R>
class command_node : public node<R, detail::produced_by<Name, R>> {
  using base = node<R, detail::produced_by<Name, R>>;

 public:
  explicit command_node(std::shared_ptr<const detail::command_instance> instance)
      : base(instance), instance_(std::move(instance)) {}

  // Sets NAME=value in the command's environment (part of the key).
  [[nodiscard]] command_node env(std::string name, std::string value) const {
    check_env_name(name);
    return change([&](detail::command_spec& s, step_options&) {
      s.env.push_back({.name = std::move(name), .value = std::move(value), .inherit = false});
    });
  }
  // Passes the caller's NAME on, its value (or its absence) part of the key.
  // Every other variable of the caller reaches the command too, unkeyed.
  [[nodiscard]] command_node env(std::string name) const {
    check_env_name(name);
    return change([&](detail::command_spec& s, step_options&) {
      s.env.push_back({.name = std::move(name), .value = {}, .inherit = true});
    });
  }
  // More sources not on the command line: a file, or the files of a
  // directory whose paths relative to it match `glob` (all when empty).
  [[nodiscard]] command_node sources(std::filesystem::path path, std::string glob = {}) const {
    return change([&](detail::command_spec& s, step_options&) {
      s.sources.push_back({.path = std::filesystem::absolute(path), .glob = std::move(glob)});
    });
  }
  [[nodiscard]] command_node version(std::uint32_t v) const {
    return change([&](detail::command_spec&, step_options& o) { o.version = v; });
  }
  // Runs a failing command again, in a fresh directory, up to n times.
  [[nodiscard]] command_node retries(std::uint32_t n) const {
    return change([&](detail::command_spec&, step_options& o) { o.retries = n; });
  }
  // Stops it (SIGTERM to its process group, SIGKILL after the grace period)
  // once it has run this long.
  template <class Rep, class Period>
  [[nodiscard]] command_node timeout(std::chrono::duration<Rep, Period> limit) const {
    return change([&](detail::command_spec&, step_options& o) {
      o.timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(limit);
    });
  }
  // Between SIGTERM and SIGKILL when it is stopped (default 5 s).
  template <class Rep, class Period>
  [[nodiscard]] command_node grace(std::chrono::duration<Rep, Period> period) const {
    return change([&](detail::command_spec& s, step_options&) {
      s.grace = std::chrono::duration_cast<std::chrono::nanoseconds>(period);
    });
  }
  // Always runs; its outputs are not stored.
  [[nodiscard]] command_node cache(never_t) const {
    return change([&](detail::command_spec&, step_options& o) { o.cache = cache_policy::never; });
  }

 private:
  void check_env_name(const std::string& name) const {
    if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos) {
      throw std::invalid_argument("command '" + std::string(Name.view()) + "': '" + name +
                                  "' is not an environment variable name");
    }
  }
  template <class Change>
  command_node change(Change&& fn) const {
    return command_node(instance_->changed(std::forward<Change>(fn)));
  }

  std::shared_ptr<const detail::command_instance> instance_;
};

namespace detail {
template <fixed_string Name, class R>
struct argument_traits<command_node<Name, R>> : argument_traits<node<R, produced_by<Name, R>>> {};
}  // namespace detail
template <fixed_string Name, class... Args>
[[nodiscard]] auto command(Args&&... args) {
  if constexpr ((detail::is_error_v<Args> || ...)) {
    return error_node{};
  } else if constexpr (constexpr std::size_t bad = detail::first_unsupported_command_arg<Args...>();
                       bad < sizeof...(Args)) {
    using given = std::remove_cvref_t<std::tuple_element_t<bad, std::tuple<Args...>>>;
    (void)detail::report<error::command_argument_not_supported<Name, bad, given>>();
    return error_node{};
  } else if constexpr (std::tuple_size_v<detail::command_outputs_t<Args...>> == 0) {
    (void)detail::report<error::command_without_output<Name>>();
    return error_node{};
  } else {
    using R = detail::command_result_t<Args...>;
    detail::command_spec spec;
    std::vector<detail::command_input> inputs;
    (detail::add_command_argument(Name.view(), std::forward<Args>(args), spec, inputs), ...);
    if (spec.argv.empty() || spec.argv.front().kind == detail::command_part_kind::output) {
      throw std::invalid_argument("command '" + std::string(Name.view()) + "' has no program to run");
    }
    spec.set_output = &detail::set_command_output<R>;
    auto instance = std::make_shared<const detail::command_instance>(
        Name.view(), step_options{}, std::move(spec), std::move(inputs), detail::command_output_type_of<R>());
    return command_node<Name, R>(std::move(instance));
  }
}

}  // namespace penstock
