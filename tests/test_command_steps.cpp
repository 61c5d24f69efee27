// ps::command: programs run as typed, cached steps. Real processes (/bin/sh,
// python3), started by the tests: exit codes, signals, missing outputs,
// timeouts and Ctrl-C killing a process tree, 100 MB of output, argv and
// environment passed verbatim, the key (script, inputs, environment), early
// cutoff, metrics lines, and --max-processes proved with a rendezvous.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <penstock/penstock.hpp>

#include "process_waits.hpp"
#include "scratch_directory.hpp"
#include "text_files.hpp"

namespace ps = penstock;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using penstock_test::appears_within;
using penstock_test::ends_within;
using penstock_test::read_text;
using penstock_test::scratch_directory;
using penstock_test::write_text;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

ps::run_options uncached() {
  ps::run_options options;
  options.threads = 2;
  return options;
}

ps::run_options cached_in(const fs::path& dir) {
  ps::run_options options = uncached();
  options.cache.enabled = true;
  options.cache.directory = dir.string();
  return options;
}

const ps::step_report& report_of(const ps::run_result& r, std::string_view step) {
  for (const auto& s : r.report().steps)
    if (s.name == step) return s;
  throw std::logic_error("no step " + std::string(step));
}

pid_t pid_in(const fs::path& file) { return static_cast<pid_t>(std::stol(read_text(file))); }

// Collects what commands log and measure.
class recorder final : public ps::observer {
 public:
  void log(std::string_view step, std::size_t, std::string_view line) override {
    const std::scoped_lock lock(mutex_);
    ++lines;
    bytes += line.size();
    if (kept.size() < 50) kept.emplace_back(std::string(step) + ": " + std::string(line));
    last = std::string(line);
  }
  void metric(std::string_view step, std::string_view name, double value, std::int64_t n) override {
    const std::scoped_lock lock(mutex_);
    metrics.push_back({std::string(step), std::string(name), value, n});
  }
  struct point {
    std::string step, name;
    double value;
    std::int64_t n;
  };
  std::mutex mutex_;
  std::size_t lines = 0;
  std::size_t bytes = 0;
  std::vector<std::string> kept;
  std::string last;
  std::vector<point> metrics;
};

TEST(command, passes_its_output_file_on) {
  auto text = ps::param<std::string>("text", "hello");
  auto made =
      ps::command<"make">("/bin/sh", "-c", "printf '%s' \"$1\" > \"$2\"", "sh", text, ps::output_file("made.txt"));
  auto length = ps::step<"length">([](const ps::file& f) { return read_text(f.path()).size(); })(made);
  const auto r = ps::pipeline<"passes">(length).run(uncached());
  ASSERT_TRUE(r.ok()) << report_of(r, "make").error;
  EXPECT_EQ(r.value(length), 5u);
}

TEST(command, nonzero_exit_fails_with_its_code_and_last_stderr_lines) {
  auto out = ps::command<"fail">(
      "/bin/sh", "-c", "for i in $(seq 1 30); do echo \"line $i\" >&2; done; printf 'caf\\351\\n' >&2; exit 3",
      ps::output_file("x"));
  const auto r = ps::pipeline<"exit_code">(out).run(uncached());
  const auto& s = report_of(r, "fail");
  EXPECT_EQ(s.status, ps::step_status::failed);
  EXPECT_TRUE(contains(s.error, "exited with code 3")) << s.error;
  EXPECT_TRUE(contains(s.error, "its last 20 lines of stderr")) << s.error;
  EXPECT_TRUE(contains(s.error, "line 30")) << s.error;
  EXPECT_TRUE(contains(s.error, "line 12")) << s.error;
  EXPECT_FALSE(contains(s.error, "line 11\n")) << s.error;  // only the last 20
  EXPECT_TRUE(contains(s.error, "caf\xe9")) << s.error;     // bytes as written
}

TEST(command, death_by_a_signal_names_the_signal) {
  auto out = ps::command<"crash">("/bin/sh", "-c", "kill -SEGV $$", ps::output_file("x"));
  const auto r = ps::pipeline<"signal">(out).run(uncached());
  const auto& s = report_of(r, "crash");
  EXPECT_EQ(s.status, ps::step_status::failed);
  EXPECT_TRUE(contains(s.error, "killed by signal 11 (SIGSEGV")) << s.error;
}

TEST(command, a_declared_output_not_produced_fails_naming_it) {
  auto out = ps::command<"lazy">("/bin/sh", "-c", "touch \"$1\"", "sh", ps::output_file("made"),
                                 ps::output_file("forgotten.csv"));
  const auto r = ps::pipeline<"missing">(ps::get<1>(out)).run(uncached());
  const auto& s = report_of(r, "lazy");
  EXPECT_EQ(s.status, ps::step_status::failed);
  EXPECT_TRUE(contains(s.error, "did not produce its declared output 'forgotten.csv'")) << s.error;
}

TEST(command, a_program_not_on_path_fails_naming_it) {
  auto out = ps::command<"typo">("pyhton3-no-such-program", "-c", "pass", ps::output_file("x"));
  const auto r = ps::pipeline<"not_found">(out).run(uncached());
  const auto& s = report_of(r, "typo");
  EXPECT_EQ(s.status, ps::step_status::failed);
  EXPECT_TRUE(contains(s.error, "program 'pyhton3-no-such-program' was not found on PATH")) << s.error;
}

TEST(command, a_missing_source_fails_naming_it_and_runs_uncached) {
  scratch_directory scratch("penstock-command");
  const fs::path script = scratch.path() / "gone.py";
  auto out = ps::command<"ghost">("/bin/sh", ps::source(script), ps::output_file("x"));
  const auto r = ps::pipeline<"missing_source">(out).run(cached_in(scratch.path() / "cache"));
  const auto& s = report_of(r, "ghost");
  EXPECT_EQ(s.status, ps::step_status::failed);
  EXPECT_TRUE(contains(s.error, "its declared source '" + script.string() + "' does not exist")) << s.error;
  EXPECT_FALSE(s.key.has_value());  // unkeyable: never looked up, never stored
}

TEST(command, bad_declarations_are_refused_naming_the_step) {
  try {
    (void)ps::command<"escape">("/bin/true", ps::output_file("../outside"));
    ADD_FAILURE() << "an output outside the working directory was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "command 'escape': output '../outside' must be a relative path")) << e.what();
  }
  try {
    (void)ps::command<"twice">("/bin/true", ps::output_file("a"), ps::output_file("a"));
    ADD_FAILURE() << "a twice-declared output was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "command 'twice': output 'a' is declared twice")) << e.what();
  }
  try {
    (void)ps::command<"env">("/bin/true", ps::output_file("a")).env("A=B", "c");
    ADD_FAILURE() << "a variable name with '=' was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "command 'env': 'A=B' is not an environment variable name")) << e.what();
  }
}

TEST(command, argv_arrives_verbatim) {
  const std::vector<std::string> args{"two words", "it's \"quoted\"", "naïve ünïcödé 日本",       "$HOME", "*",
                                      "",          "\\back\\slash",   "bytes \xff\xfe not UTF-8", "-n"};
  auto out = ps::command<"echo_args">("/bin/sh", "-c", "out=$1; shift; printf '%s\\0' \"$@\" > \"$out\"", "sh",
                                      ps::output_file("args"), args[0], args[1], args[2], args[3], args[4], args[5],
                                      args[6], args[7], args[8]);
  const auto r = ps::pipeline<"verbatim">(out).run(uncached());
  ASSERT_TRUE(r.ok()) << report_of(r, "echo_args").error;
  std::string expected;
  for (const auto& a : args) expected += a + '\0';
  EXPECT_EQ(read_text(r.value(out).path()), expected);
}

TEST(command, gets_the_declared_environment_and_the_callers) {
  ::setenv("PENSTOCK_TEST_INHERITED", "from the caller", 1);
  ::setenv("PENSTOCK_TEST_UNDECLARED", "also there", 1);
  auto out = ps::command<"env">("/bin/sh", "-c",
                                "printf '%s|%s|%s|%s|%s' \"$GREETING\" \"$PENSTOCK_TEST_INHERITED\" "
                                "\"$PENSTOCK_TEST_UNDECLARED\" \"$PENSTOCK_STEP\" \"$(pwd)\" > \"$1\"",
                                "sh", ps::output_file("env.txt"))
                 .env("GREETING", "héllo wörld")
                 .env("PENSTOCK_TEST_INHERITED");
  const auto r = ps::pipeline<"environment">(out).run(uncached());
  ASSERT_TRUE(r.ok()) << report_of(r, "env").error;
  const std::string text = read_text(r.value(out).path());
  EXPECT_TRUE(text.rfind("héllo wörld|from the caller|also there|env|", 0) == 0) << text;
  // Its working directory is the attempt's own, where its output is.
  EXPECT_EQ(fs::path(text.substr(text.rfind('|') + 1)), r.value(out).path().parent_path());
}

// A script (the key's source) reading an input file; every run it makes is
// counted in `runs`, outside the cache.
struct script_pipeline {
  explicit script_pipeline(const fs::path& where) : dir(where) {
    write_text(dir / "script.sh", "echo run >> \"$3\"; head -n 1 \"$1\" > \"$2\"\n");
    write_text(dir / "input.txt", "first line\nsecond line\n");
    write_text(dir / "unrelated.txt", "nothing\n");
  }
  auto build() const {
    auto input = ps::param<ps::file>("input", ps::file(dir / "input.txt"));
    auto head = ps::command<"head">("/bin/sh", ps::source(dir / "script.sh"), input, ps::output_file("head.txt"),
                                    (dir / "runs").string());
    auto shout = ps::step<"shout">([this](const ps::file& f) {
      write_text(dir / "shouts", read_text(dir / "shouts") + "x");
      std::string s = read_text(f.path());
      for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return s;
    })(head);
    return std::pair{ps::pipeline<"script">(shout), shout};
  }
  [[nodiscard]] std::size_t runs() const { return read_text(dir / "runs").size() / 4; }
  [[nodiscard]] std::size_t shouts() const { return read_text(dir / "shouts").size(); }
  fs::path dir;
};

TEST(command_key, reruns_on_script_or_input_edits_and_not_on_unrelated_ones) {
  scratch_directory scratch("penstock-command");
  const fs::path cache = scratch.path() / "cache";
  script_pipeline p(scratch.path());
  const auto [pipeline, shout] = p.build();

  auto r = pipeline.run(cached_in(cache));
  ASSERT_TRUE(r.ok()) << report_of(r, "head").error;
  EXPECT_EQ(r.value(shout), "FIRST LINE\n");
  EXPECT_EQ(p.runs(), 1u);

  r = pipeline.run(cached_in(cache));  // nothing changed: all hits
  EXPECT_EQ(r.report().cache_hits(), 2u);
  EXPECT_EQ(p.runs(), 1u);

  write_text(scratch.path() / "unrelated.txt", "changed\n");
  r = pipeline.run(cached_in(cache));
  EXPECT_EQ(r.report().cache_hits(), 2u);
  EXPECT_EQ(p.runs(), 1u);

  write_text(scratch.path() / "script.sh", "echo run >> \"$3\"; tail -n 1 \"$1\" > \"$2\"\n");
  r = pipeline.run(cached_in(cache));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(report_of(r, "head").cache_hit);
  EXPECT_EQ(p.runs(), 2u);
  EXPECT_EQ(r.value(shout), "SECOND LINE\n");  // and what depends on it reran

  write_text(scratch.path() / "input.txt", "first line\nthird line\n");
  r = pipeline.run(cached_in(cache));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(p.runs(), 3u);
  EXPECT_EQ(r.value(shout), "THIRD LINE\n");
}

// Sources of every kind in one command: a directory (its files listed and
// each asked of the stat cache once listed), a file named by a path that is
// not normal (lib/../), and a link (its target's bytes); and one command
// whose source's directory is missing. The stat cache is asked for the
// roots while they are stat'ed (hash_trees): a rerun must still see every
// edit, and only edits.
TEST(command_key, directory_file_and_linked_sources_rerun_only_when_their_bytes_change) {
  scratch_directory scratch("penstock-command");
  const fs::path dir = scratch.path();
  fs::create_directories(dir / "lib" / "sub");
  write_text(dir / "lib" / "a.sh", "A=1\n");
  write_text(dir / "lib" / "sub" / "b.sh", "B=2\n");
  write_text(dir / "plain.txt", "plain\n");
  write_text(dir / "real.txt", "one\n");
  write_text(dir / "other.txt", "two\n");
  fs::create_symlink(dir / "real.txt", dir / "link.txt");
  auto out = ps::command<"uses">(
      "/bin/sh", "-c", "echo run >> \"$1\"; cat \"$2\"/a.sh \"$2\"/sub/b.sh \"$3\" \"$4\" > \"$5\"", "sh",
      (dir / "runs").string(), ps::source(dir / "lib"), ps::source(dir / "lib" / ".." / "plain.txt"),
      ps::source(dir / "link.txt"), ps::output_file("o"));
  const auto pipeline = ps::pipeline<"sources">(out);
  const auto runs = [&] { return read_text(dir / "runs").size() / 4; };
  const auto cache = cached_in(dir / "cache");

  auto r = pipeline.run(cache);
  ASSERT_TRUE(r.ok()) << report_of(r, "uses").error;
  EXPECT_EQ(read_text(r.value(out).path()), "A=1\nB=2\nplain\none\n");
  r = pipeline.run(cache);
  EXPECT_EQ(r.report().cache_hits(), 1u);
  EXPECT_EQ(runs(), 1u);

  write_text(dir / "lib" / "sub" / "b.sh", "B=3\n");  // same size: the stat fields tell
  r = pipeline.run(cache);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(runs(), 2u) << "a file in the directory changed";
  EXPECT_EQ(read_text(r.value(out).path()), "A=1\nB=3\nplain\none\n");

  write_text(dir / "plain.txt", "plainer\n");
  r = pipeline.run(cache);
  EXPECT_EQ(runs(), 3u) << "the file named through lib/..";

  fs::remove(dir / "link.txt");
  fs::create_symlink(dir / "other.txt", dir / "link.txt");
  r = pipeline.run(cache);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(runs(), 4u) << "the link now names other bytes";
  EXPECT_EQ(read_text(r.value(out).path()), "A=1\nB=3\nplainer\ntwo\n");

  write_text(dir / "lib" / "new.sh", "added\n");
  r = pipeline.run(cache);
  EXPECT_EQ(runs(), 5u) << "a file added to the directory";
  r = pipeline.run(cache);
  EXPECT_EQ(runs(), 5u) << "and nothing since";
  EXPECT_EQ(r.report().cache_hits(), 1u);

  // A source under a directory that does not exist: named, and unkeyable.
  const fs::path nowhere = dir / "no-such-dir" / "s.sh";
  auto lost = ps::command<"lost">("/bin/sh", ps::source(nowhere), ps::output_file("x"));
  const auto l = ps::pipeline<"lost_source">(lost).run(cache);
  const auto& s = report_of(l, "lost");
  EXPECT_EQ(s.status, ps::step_status::failed);
  EXPECT_TRUE(contains(s.error, nowhere.string())) << s.error;
  EXPECT_FALSE(s.key.has_value());
}

TEST(command_key, identical_output_cuts_off_its_dependents) {
  scratch_directory scratch("penstock-command");
  const fs::path cache = scratch.path() / "cache";
  script_pipeline p(scratch.path());
  const auto [pipeline, shout] = p.build();
  ASSERT_TRUE(pipeline.run(cached_in(cache)).ok());
  EXPECT_EQ(p.shouts(), 1u);
  // The second line changes; `head` reruns and writes the same first line.
  write_text(scratch.path() / "input.txt", "first line\nsomething else\n");
  const auto r = pipeline.run(cached_in(cache));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(report_of(r, "head").cache_hit);
  EXPECT_EQ(p.runs(), 2u);
  EXPECT_TRUE(report_of(r, "shout").cache_hit);
  EXPECT_EQ(p.shouts(), 1u);
}

TEST(command_key, explain_names_the_script_and_the_variable_that_changed) {
  scratch_directory scratch("penstock-command");
  ::setenv("PENSTOCK_HOME", (scratch.path() / "cache").c_str(), 1);
  write_text(scratch.path() / "s.sh", "printf '%s' \"$MODE\" > \"$1\"\n");
  ::setenv("PENSTOCK_TEST_MODE", "a", 1);
  auto out = ps::command<"moded">("/bin/sh", ps::source(scratch.path() / "s.sh"), ps::output_file("o"))
                 .env("MODE", "fast")
                 .env("PENSTOCK_TEST_MODE");
  const auto pipeline = ps::pipeline<"explained">(out);
  const auto explain = [&] {
    const char* argv[] = {"explained", "explain"};
    testing::internal::CaptureStdout();
    const int code = ps::main(pipeline, 2, argv);
    std::string text = testing::internal::GetCapturedStdout();
    EXPECT_EQ(code, 0) << text;
    return text;
  };
  const char* run_argv[] = {"explained", "run", "--quiet"};
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  ASSERT_EQ(ps::main(pipeline, 3, run_argv), 0);
  (void)testing::internal::GetCapturedStdout();
  (void)testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(explain(), "moded  HIT")) << explain();

  write_text(scratch.path() / "s.sh", "printf '%s!' \"$MODE\" > \"$1\"\n");
  std::string text = explain();
  EXPECT_TRUE(contains(text, "MISS  source " + (scratch.path() / "s.sh").string() + " changed")) << text;
  write_text(scratch.path() / "s.sh", "printf '%s' \"$MODE\" > \"$1\"\n");

  ::setenv("PENSTOCK_TEST_MODE", "b", 1);
  text = explain();
  EXPECT_TRUE(contains(text, "MISS  environment variable PENSTOCK_TEST_MODE changed")) << text;
  ::setenv("PENSTOCK_TEST_MODE", "a", 1);
  EXPECT_TRUE(contains(explain(), "moded  HIT"));
  ::unsetenv("PENSTOCK_HOME");
}

TEST(command, several_outputs_are_split_with_get_and_restored_from_the_cache) {
  scratch_directory scratch("penstock-command");
  auto both = ps::command<"both">("/bin/sh", "-c", "echo table > \"$1\"; echo a > \"$2/a.txt\"; echo b > \"$2/b.txt\"",
                                  "sh", ps::output_file("table.csv"), ps::output_dir("plots"));
  auto table = ps::get<0>(both);
  auto plots = ps::get<1>(both);
  auto summary = ps::step<"summary">([](const ps::file& t, const ps::directory& d) {
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(d.path())) ++files;
    return read_text(t.path()) + std::to_string(files);
  })(table, plots);
  const auto pipeline = ps::pipeline<"outputs">(summary, plots);
  auto r = pipeline.run(cached_in(scratch.path() / "cache"));
  ASSERT_TRUE(r.ok()) << report_of(r, "both").error;
  EXPECT_EQ(r.value(summary), "table\n2");
  r = pipeline.run(cached_in(scratch.path() / "cache"));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(report_of(r, "both").cache_hit);
  EXPECT_EQ(read_text(r.value(plots).path() / "b.txt"), "b\n");  // restored, readable
}

TEST(command, metric_lines_are_the_steps_metrics) {
  auto out = ps::command<"train">("/bin/sh", "-c",
                                  "echo 'penstock:metric loss=0.5 step=1'; echo 'penstock:metric loss=0.25 step=2'; "
                                  "echo 'penstock:metric accuracy=0.9'; echo 'penstock:metric oops'; echo plain; "
                                  "touch \"$1\"",
                                  "sh", ps::output_file("model"));
  recorder seen;
  ps::run_options options = uncached();
  options.observers = {&seen};
  const auto r = ps::pipeline<"metrics">(out).run(options);
  ASSERT_TRUE(r.ok()) << report_of(r, "train").error;
  ASSERT_EQ(seen.metrics.size(), 3u);
  EXPECT_EQ(seen.metrics[0].step, "train");
  EXPECT_EQ(seen.metrics[0].name, "loss");
  EXPECT_EQ(seen.metrics[0].value, 0.5);
  EXPECT_EQ(seen.metrics[0].n, 1);
  EXPECT_EQ(seen.metrics[1].value, 0.25);
  EXPECT_EQ(seen.metrics[1].n, 2);
  EXPECT_EQ(seen.metrics[2].name, "accuracy");
  EXPECT_EQ(seen.metrics[2].n, 0);
  // A malformed metric line and the others are log lines.
  ASSERT_EQ(seen.kept.size(), 2u);
  EXPECT_EQ(seen.kept[0], "train: penstock:metric oops");
  EXPECT_EQ(seen.kept[1], "train: plain");
}

TEST(command, a_hundred_megabytes_of_stdout_neither_deadlock_nor_fill_memory) {
  auto out = ps::command<"chatty">("/bin/sh", "-c",
                                   "yes 'a line of output, repeated: 0123456789012345678901234567890123456789' "
                                   "| head -c 100000000; echo done > \"$1\"",
                                   "sh", ps::output_file("done"));
  recorder seen;
  ps::run_options options = uncached();
  options.observers = {&seen};
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  const auto r = ps::pipeline<"chatty">(out).run(options);
  ASSERT_TRUE(r.ok()) << report_of(r, "chatty").error;
  // The log keeps its first 4 MiB and says how many lines it left out.
  EXPECT_GT(seen.lines, 10'000u);
  EXPECT_LE(seen.bytes, (std::size_t{4} << 20) + 200);
  EXPECT_TRUE(contains(seen.last, "more lines of its output not logged")) << seen.last;
  // The peak resident size grew by far less than the 100 MB it wrote (KiB;
  // measured as growth, since a sanitizer's shadow memory adds its own).
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // A sanitizer's shadow memory and allocator grow with what is allocated
  // and freed (80 MB under TSan here): the bound is checked without one.
  (void)before;
#else
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 48L * 1024) << "KiB before: " << before.ru_maxrss;
#endif
}

TEST(command, timeout_kills_the_whole_process_tree) {
  scratch_directory scratch("penstock-command");
  const fs::path pid_file = scratch.path() / "child.pid";
  // The leader exits on SIGTERM; the child it started ignores SIGTERM.
  auto out = ps::command<"slow">("/bin/sh", "-c", "(trap '' TERM; exec sleep 1000) & echo $! > \"$1\"; wait", "sh",
                                 pid_file.string(), ps::output_file("never"))
                 .timeout(300ms)
                 .grace(10s);
  const auto r = ps::pipeline<"timeout">(out).run(uncached());
  const auto& s = report_of(r, "slow");
  EXPECT_EQ(s.status, ps::step_status::timed_out);
  EXPECT_TRUE(contains(s.error, "exceeded its timeout of 0.3 s: its process group was sent SIGTERM")) << s.error;
  ASSERT_TRUE(fs::exists(pid_file));
  EXPECT_TRUE(ends_within(pid_in(pid_file), 20s));
}

TEST(command, a_leader_ignoring_sigterm_gets_sigkill_after_the_grace_period) {
  scratch_directory scratch("penstock-command");
  const fs::path pid_file = scratch.path() / "leader.pid";
  auto out = ps::command<"stubborn">("/bin/sh", "-c", "trap '' TERM; echo $$ > \"$1\"; while :; do sleep 1; done", "sh",
                                     pid_file.string(), ps::output_file("never"))
                 .timeout(200ms)
                 .grace(200ms);
  const auto r = ps::pipeline<"stubborn">(out).run(uncached());
  const auto& s = report_of(r, "stubborn");
  EXPECT_EQ(s.status, ps::step_status::timed_out);
  EXPECT_TRUE(contains(s.error, "then SIGKILL after 0.2 s of grace")) << s.error;
  EXPECT_TRUE(ends_within(pid_in(pid_file), 20s));
}

TEST(command, stopping_the_run_ends_the_command_and_its_children) {
  scratch_directory scratch("penstock-command");
  const fs::path pid_file = scratch.path() / "child.pid";
  auto out = ps::command<"long">("/bin/sh", "-c",
                                 "(trap '' TERM; exec sleep 1000) & echo $! > \"$1.tmp\"; "
                                 "mv \"$1.tmp\" \"$1\"; wait",
                                 "sh", pid_file.string(), ps::output_file("never"))
                 .grace(200ms);
  std::atomic<bool> stop{false};
  ps::run_options options = uncached();
  options.stop = &stop;
  std::thread ctrl_c([&] {
    if (appears_within(pid_file, 60s)) stop = true;
  });
  const auto r = ps::pipeline<"stopped">(out).run(options);
  ctrl_c.join();
  const auto& s = report_of(r, "long");
  EXPECT_EQ(s.status, ps::step_status::cancelled) << s.error;
  EXPECT_TRUE(contains(s.error, "the run was stopped: its process group was sent SIGTERM")) << s.error;
  EXPECT_TRUE(ends_within(pid_in(pid_file), 20s));
}

TEST(command, retries_run_again_in_a_fresh_directory) {
  scratch_directory scratch("penstock-command");
  // Fails unless its directory is new and it has failed before.
  auto out = ps::command<"flaky">("/bin/sh", "-c",
                                  "[ -e left-behind ] && exit 7; touch left-behind; "
                                  "if [ -e \"$1\" ]; then pwd > \"$2\"; else touch \"$1\"; exit 1; fi",
                                  "sh", (scratch.path() / "failed-once").string(), ps::output_file("where"))
                 .retries(2);
  const auto r = ps::pipeline<"flaky">(out).run(uncached());
  const auto& s = report_of(r, "flaky");
  ASSERT_TRUE(r.ok()) << s.error;
  EXPECT_EQ(s.attempts, 2u);
}

// The supervisor's thread ends by itself after the run: the run's stop
// flag and observers, freed as soon as run() returns, are not touched
// after (the ASan preset runs this).
TEST(command, a_run_frees_its_stop_flag_and_observer_as_soon_as_it_returns) {
  auto one =
      ps::command<"one">("/bin/sh", "-c", "echo first; echo second >&2; : > \"$1\"", "sh", ps::output_file("one"));
  auto two = ps::command<"two">("/bin/sh", "-c", "echo third; : > \"$1\"", "sh", ps::output_file("two"));
  const auto pipeline = ps::pipeline<"freed">(one, two);
  for (int k = 0; k < 20; ++k) {
    auto stop = std::make_unique<std::atomic<bool>>(false);
    auto seen = std::make_unique<recorder>();
    ps::run_options options = uncached();
    options.stop = stop.get();
    options.observers = {seen.get()};
    const auto r = pipeline.run(options);
    ASSERT_TRUE(r.ok()) << report_of(r, "one").error << report_of(r, "two").error;
    EXPECT_EQ(seen->lines, 3u);
  }
}

// Command `Name`, one of `total`: it marks itself running in `dir`, waits
// until `most` run at once (or all that are left run), says how many it saw
// running and ends. A supervisor that runs them one by one makes them wait
// forever (they give up after a minute and fail).
template <ps::fixed_string Name>
auto meeting(const fs::path& dir, int most, int total) {
  const std::string script =
      "dir=$1; touch \"$dir/$$.running\"; i=0; "
      "while :; do n=$(ls \"$dir\" | grep -c running); d=$(ls \"$dir\" | grep -c done); "
      "[ \"$n\" -ge " +
      std::to_string(most) + " ] && break; [ $((n + d)) -ge " + std::to_string(total) +
      " ] && break; i=$((i+1)); [ $i -gt 6000 ] && { echo 'gave up waiting for the others' >&2; exit 9; }; "
      "sleep 0.01; done; echo \"$n\" > \"$2\"; touch \"$dir/$$.done\"; rm \"$dir/$$.running\"";
  return ps::command<Name>("/bin/sh", "-c", script, "sh", dir.string(), ps::output_file("seen"));
}

TEST(command, max_processes_run_at_once_and_never_more_without_holding_threads) {
  scratch_directory scratch("penstock-command");
  constexpr int most = 3;
  const fs::path dir = scratch.path();
  constexpr int total = 6;
  auto a = meeting<"meet0">(dir, most, total);
  auto b = meeting<"meet1">(dir, most, total);
  auto c = meeting<"meet2">(dir, most, total);
  auto d = meeting<"meet3">(dir, most, total);
  auto e = meeting<"meet4">(dir, most, total);
  auto f = meeting<"meet5">(dir, most, total);
  ps::run_options options = uncached();
  options.threads = 1;  // three processes meet though one thread runs the steps
  options.max_processes = most;
  const auto r = ps::pipeline<"meeting">(a, b, c, d, e, f).run(options);
  for (const auto& s : r.report().steps) EXPECT_EQ(s.status, ps::step_status::succeeded) << s.name << ": " << s.error;
  ASSERT_TRUE(r.ok());
  // They met (the first three saw three running), and a fourth never ran
  // beside three: none saw more.
  std::vector<int> seen;
  for (const auto& n : {r.value(a), r.value(b), r.value(c), r.value(d), r.value(e), r.value(f)})
    seen.push_back(std::stoi(read_text(n.path())));
  EXPECT_EQ(*std::max_element(seen.begin(), seen.end()), most);
  EXPECT_GE(std::count(seen.begin(), seen.end(), most), most);
}

}  // namespace
