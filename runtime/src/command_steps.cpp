// Command steps (ps::command) in the executor: see command_steps.hpp.
#include "command_steps.hpp"

#include <string.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <system_error>

#include <fmt/format.h>

#include <penstock/detail/command_spec.hpp>
#include <penstock/file.hpp>

#include "command_keys.hpp"
#include "executor.hpp"
#include "file_values.hpp"

extern char** environ;

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

std::string seconds_text(std::chrono::nanoseconds d) {
  return fmt::format("{:.3g} s", std::chrono::duration<double>(d).count());
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : std::string("an unknown signal");
}

std::string stderr_tail(const process_outcome& o) {
  if (o.stderr_tail.empty()) return "; it wrote nothing to stderr";
  std::string out = fmt::format("; its last {} lines of stderr:", o.stderr_tail.size());
  if (o.stderr_tail.size() == 1) out = "; its stderr:";
  for (const auto& line : o.stderr_tail) out += "\n  " + line;
  return out;
}

// The caller's environment with the command's declarations applied, and
// PENSTOCK_STEP naming the step.
std::vector<std::string> command_environment(const command_spec& spec, std::string_view step) {
  std::vector<std::string> env;
  const auto declared = declared_environment(spec);
  const auto replaced = [&](std::string_view entry) {
    const std::string_view name = entry.substr(0, entry.find('='));
    if (name == "PENSTOCK_STEP") return true;
    return std::any_of(declared.begin(), declared.end(), [&](const auto& d) { return d.first == name; });
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    if (!replaced(*e)) env.emplace_back(*e);
  for (const auto& [name, value] : declared)
    if (value) env.push_back(name + "=" + *value);
  env.push_back("PENSTOCK_STEP=" + std::string(step));
  return env;
}

}  // namespace

std::string describe_ending(const process_outcome& o) {
  switch (o.how) {
    case process_outcome::ending::exited:
      return o.code == 0 ? std::string() : fmt::format("exited with code {}", o.code) + stderr_tail(o);
    case process_outcome::ending::signaled:
      return fmt::format("was killed by signal {} ({}: {})", o.signal, signal_name(o.signal), ::strsignal(o.signal)) +
             stderr_tail(o);
    case process_outcome::ending::timed_out:
    case process_outcome::ending::cancelled: return {};
    case process_outcome::ending::not_started: return o.error;
  }
  return {};
}

bool executor::prepare_command(const node_description& node, const input_list& inputs, command_run& run) const {
  const command_spec& spec = *node.command;
  try {
    run.argv.clear();
    for (const auto& part : spec.argv) {
      switch (part.kind) {
        case command_part_kind::literal: run.argv.push_back(part.text); break;
        case command_part_kind::input: run.argv.push_back(spec.input_text[part.index](inputs.slots[part.index])); break;
        case command_part_kind::output: run.argv.emplace_back(); break;  // per attempt
        case command_part_kind::source: run.argv.push_back(spec.sources[part.index].path.string()); break;
      }
    }
    for (const auto& source : spec.sources) {
      std::error_code ec;
      if (!fs::exists(source.path, ec))
        throw file_error(fmt::format("its declared source '{}' does not exist", source.path.string()));
    }
    run.program = resolve_program(spec, run.argv.front());
  } catch (const std::exception& e) {
    run.error = e.what();
    return false;
  }
  run.environment = command_environment(spec, node.name);
  return true;
}

process_request executor::next_attempt(const node_description& node, command_run& run) const {
  const command_spec& spec = *node.command;
  ++run.attempts;
  std::error_code ec;
  run.directory = fs::absolute(outputs_->make_directory(node.name, context::npos), ec);
  run.outputs.clear();
  for (const auto& out : spec.outputs) {
    const fs::path where = run.directory / out.name;
    if (out.kind == path_kind::directory) {
      fs::create_directories(where, ec);
    } else if (where.has_parent_path()) {
      fs::create_directories(where.parent_path(), ec);
    }
    if (ec) throw file_error(fmt::format("cannot make the place of its output '{}': {}", out.name, ec.message()));
    run.outputs.push_back(where);
  }
  for (std::size_t k = 0; k < spec.argv.size(); ++k)
    if (spec.argv[k].kind == command_part_kind::output) run.argv[k] = run.outputs[spec.argv[k].index].string();
  process_request r{.step = std::string(node.name),
                    .program = run.program,
                    .argv = run.argv,
                    .environment = run.environment,
                    .directory = run.directory,
                    .timeout = node.options.timeout,
                    .grace = spec.grace};
  r.environment.push_back(fmt::format("PENSTOCK_ATTEMPT={}", run.attempts));
  return r;
}

bool executor::judge_attempt(const node_description& node, command_run& run, const process_outcome& o, bool may_retry) {
  const command_spec& spec = *node.command;
  if (o.lines_not_logged != 0) {
    told_.write(node.name, context::npos,
                fmt::format("({} more lines of its output not logged: a command's log keeps {} MiB)",
                            o.lines_not_logged, process_supervisor::log_limit >> 20));
  }
  const std::string killed = o.killed ? fmt::format(", then SIGKILL after {} of grace", seconds_text(spec.grace)) : "";
  if (o.how == process_outcome::ending::timed_out) {
    run.status = step_status::timed_out;
    run.error = fmt::format("exceeded its timeout of {}: its process group was sent SIGTERM{}",
                            seconds_text(node.options.timeout), killed);
    return true;
  }
  if (o.how == process_outcome::ending::cancelled) {
    run.status = step_status::cancelled;
    run.error = o.started ? fmt::format("the run was stopped: its process group was sent SIGTERM{}", killed)
                          : std::string("the run was stopped before it started");
    return true;
  }
  run.error = describe_ending(o);
  if (run.error.empty()) {
    for (std::size_t k = 0; k < spec.outputs.size(); ++k) {
      const auto& out = spec.outputs[k];
      std::error_code ec;
      const bool there =
          out.kind == path_kind::file ? fs::is_regular_file(run.outputs[k], ec) : fs::is_directory(run.outputs[k], ec);
      if (!there) {
        run.error = fmt::format("it exited with code 0 but did not produce its declared output '{}' (a {} at {})",
                                out.name, out.kind == path_kind::file ? "file" : "directory", run.outputs[k].string());
        break;
      }
    }
  }
  if (run.error.empty()) {
    run.status = step_status::succeeded;
    return true;
  }
  run.status = step_status::failed;
  if (!may_retry || run.attempts > node.options.retries || stop_->load(std::memory_order_relaxed)) return true;
  if (told_.steps()) told_.step_retried(run.node, run.attempts, run.error);
  return false;
}

executor::node_result executor::start_command(std::uint32_t i, step_clock::ticks start, const input_list& inputs,
                                              step_report& report) {
  const node_description& node = graph_.nodes[i];
  auto& run = command_runs_[i] = std::make_unique<command_run>();
  run->node = i;
  run->started = start;
  // On the supervisor's thread: a retry is submitted from there; the end
  // goes to the arena.
  struct resubmit {
    executor* self;
    std::uint32_t i;
    void operator()(process_outcome o) const {
      command_run& r = *self->command_runs_[i];
      const node_description& n = self->graph_.nodes[i];
      bool done = self->judge_attempt(n, r, o, true);
      while (!done) {
        try {
          self->processes_->submit(self->next_attempt(n, r), resubmit{self, i});
          return;
        } catch (const std::exception& e) {
          r.status = step_status::failed;
          r.error = e.what();
          done = true;
        }
      }
      r.ended.store(true, std::memory_order_release);
      self->arena_->enqueue(std::move(*r.finish));
    }
  };
  if (prepare_command(node, inputs, *run)) {
    try {
      process_request first = next_attempt(node, *run);
      process_supervisor& supervisor = processes();
      run->finish.emplace(tasks_.defer([this, i] { finish_command(i); }));
      supervisor.submit(std::move(first), resubmit{this, i});
      return {.ok = true, .async = true};
    } catch (const std::exception& e) {
      run->finish.reset();
      run->error = e.what();
    }
  }
  report.status = step_status::failed;
  report.error = run->error;
  report.attempts = std::max<std::uint32_t>(run->attempts, 1);
  finish_step(i, report, start, step_clock::now(), nullptr);
  return {};
}

void executor::finish_command(std::uint32_t i) {
  const node_description& node = graph_.nodes[i];
  command_run& run = *command_runs_[i];
  (void)run.ended.load(std::memory_order_acquire);
  step_report& report = reports_[i];
  conclude_command(node, run, state_.node_slots[i], report);
  finish_step(i, report, run.started, step_clock::now(), nullptr);
  const std::uint32_t next = count_down(i, report.status == step_status::succeeded, consumers::all);
  finished_.fetch_add(1, std::memory_order_release);
  if (next != none) run_from(next);
}

void executor::attempt_command(const node_description& node, const input_list& inputs, void* output,
                               step_report& report) {
  command_run run;
  run.node = static_cast<std::uint32_t>(&node - graph_.nodes.data());
  bool done = !prepare_command(node, inputs, run);
  while (!done) {
    try {
      done = judge_attempt(node, run, processes().run(next_attempt(node, run)), true);
    } catch (const std::exception& e) {
      run.status = step_status::failed;
      run.error = e.what();
      done = true;
    }
  }
  conclude_command(node, run, output, report);
}

void executor::conclude_command(const node_description& node, const command_run& run, void* output,
                                step_report& report) const {
  report.attempts = std::max<std::uint32_t>(run.attempts, 1);
  report.status = run.status;
  report.error = run.error;
  if (run.status != step_status::succeeded) return;
  try {
    node.command->set_output(output, run.outputs);
    check_files(node, output);
  } catch (const std::exception& e) {
    node.slot.clear(output);
    report.status = step_status::failed;
    report.error = e.what();
  }
}

}  // namespace penstock::detail::r1
