// ps::file and ps::directory in the runtime: hashing with a stat cache,
// the steps' output directories, and the files' bytes in the cache.
#include "file_values.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <istream>
#include <memory>
#include <ostream>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_group.h>

#include "posix_file.hpp"
#include "process_identity.hpp"

namespace penstock::detail::r1 {

namespace fs = std::filesystem;

namespace {

// Reads of this size keep the disk and XXH3 (20+ GB/s) both busy.
constexpr std::size_t hash_chunk = std::size_t{4} << 20;
// A file modified this close before it was hashed is hashed again next time.
constexpr std::int64_t racy_window_ns = 1'000'000'000;

std::string why(int error) { return std::generic_category().message(error); }

std::int64_t ns_of(const struct timespec& t) noexcept {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

file_stat_row row_of(const std::string& absolute, const struct stat& st) {
  return {.path = absolute,
          .device = static_cast<std::uint64_t>(st.st_dev),
          .inode = static_cast<std::uint64_t>(st.st_ino),
          .size = static_cast<std::uint64_t>(st.st_size),
          .mtime_ns = ns_of(st.st_mtim),
          .ctime_ns = ns_of(st.st_ctim)};
}

bool trusted(const known_file_digest& known, const file_stat_row& row) noexcept {
  return row.mtime_ns < known.hashed_at_ns - racy_window_ns && row.ctime_ns < known.hashed_at_ns - racy_window_ns;
}

// The process's own memory of hashed files, for hashing without a store.
struct memo_row {
  file_stat_row row;
  known_file_digest known;
};
std::mutex memo_mutex;
std::unordered_map<std::string, memo_row>& memo() {
  static auto* rows = new std::unordered_map<std::string, memo_row>;
  return *rows;
}

// XXH3-128 of the bytes of the open file `fd` (`path` for messages).
digest hash_bytes(int fd, const std::string& path, std::uint64_t size) {
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<char[]> buffer(new char[std::min<std::uint64_t>(std::max<std::uint64_t>(size, 1), hash_chunk)]);
  const std::size_t capacity = std::min<std::uint64_t>(std::max<std::uint64_t>(size, 1), hash_chunk);
  hasher h;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.get(), capacity);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw file_error(fmt::format("cannot read '{}': {}", path, why(errno)));
    if (n == 0) break;
    h.update(buffer.get(), static_cast<std::size_t>(n));
  }
  return h.finish();
}

struct found_file {
  path_entry entry;
  file_stat_row row;
  std::optional<known_file_digest> known;  // from the stat cache
};

// The link's target text and its digest.
std::string link_target(const fs::path& path) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(path, ec);
  if (ec) throw file_error(fmt::format("cannot read the link '{}': {}", path.string(), ec.message()));
  return target.native();
}

// Hashes one regular file or link (`full` is its path) into `f.entry`, and
// records its stat row when it was read.
void hash_one(found_file& f, const std::string& full,
              std::vector<std::pair<file_stat_row, known_file_digest>>& learned) {
  if (f.entry.symlink) {
    const std::string target = link_target(full);
    f.entry.content = hasher().update(target.data(), target.size()).finish();
    f.entry.size = target.size();
    return;
  }
  if (f.known && trusted(*f.known, f.row)) {
    f.entry.content = f.known->content;
    return;
  }
  const unique_fd fd(::open(full.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw file_error(fmt::format("cannot open '{}': {}", full, why(errno)));
  const std::int64_t started = now_ns();
  f.entry.content = hash_bytes(fd.get(), full, f.row.size);
  struct stat after {};
  // Changed while it was read: its digest is not remembered.
  if (::fstat(fd.get(), &after) == 0 && same_stat_fields(row_of(std::string(), after), f.row)) {
    learned.emplace_back(f.row, known_file_digest{.content = f.entry.content, .hashed_at_ns = started});
  }
}

found_file stat_entry(const fs::path& absolute, std::string relative) {
  struct stat st {};
  if (::lstat(absolute.c_str(), &st) != 0)
    throw file_error(fmt::format("cannot read '{}': {}", absolute.string(), why(errno)));
  found_file f;
  f.entry.path = std::move(relative);
  f.entry.symlink = S_ISLNK(st.st_mode);
  if (!f.entry.symlink && !S_ISREG(st.st_mode)) {
    throw file_error(fmt::format("'{}' is not a regular file", absolute.string()));
  }
  f.entry.executable = (st.st_mode & S_IXUSR) != 0 && !f.entry.symlink;
  f.entry.size = static_cast<std::uint64_t>(st.st_size);
  f.row = row_of(absolute.native(), st);
  return f;
}

digest tree_digest(const std::vector<path_entry>& entries) {
  hasher h;
  h.update(std::string_view("penstock directory v1")).update_value(static_cast<std::uint64_t>(entries.size()));
  for (const auto& e : entries) {
    h.update(e.path)
        .update_value(static_cast<std::uint8_t>(e.executable))
        .update_value(static_cast<std::uint8_t>(e.symlink));
    h.update_value(e.size).update(e.content);
  }
  return h.finish();
}

}  // namespace

void check_readable(path_kind kind, const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw file_error(fmt::format("cannot read '{}': {}", path.string(), why(errno)));
  if (kind == path_kind::file) {
    if (S_ISDIR(st.st_mode)) throw file_error(fmt::format("'{}' is a directory, not a file", path.string()));
    if (!S_ISREG(st.st_mode)) throw file_error(fmt::format("'{}' is not a regular file", path.string()));
    const unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw file_error(fmt::format("cannot open '{}': {}", path.string(), why(errno)));
  } else {
    if (!S_ISDIR(st.st_mode)) throw file_error(fmt::format("'{}' is not a directory", path.string()));
    if (::access(path.c_str(), R_OK | X_OK) != 0)
      throw file_error(fmt::format("cannot read the directory '{}': {}", path.string(), why(errno)));
  }
}

namespace {

// A file's path in its tree: `root` (normal and absolute) and `relative`.
std::string joined(const std::string& root, const std::string& relative) {
  return root.back() == '/' ? root + relative : root + '/' + relative;
}

// Whether `path` is absolute and already normal (lexically_normal would
// leave it as it is): no empty, "." or ".." element, no trailing slash.
bool normal_absolute(std::string_view path) noexcept {
  if (path.empty() || path.front() != '/') return false;
  if (path.size() == 1) return true;
  if (path.back() == '/') return false;
  std::size_t begin = 1;
  while (begin <= path.size()) {
    const std::size_t end = std::min(path.find('/', begin), path.size());
    const std::string_view element = path.substr(begin, end - begin);
    if (element.empty() || element == "." || element == "..") return false;
    begin = end + 1;
  }
  return true;
}

// The directory of the last file stat'ed by one thread of hash_trees, open
// (O_PATH): the next file in it is stat'ed by name (fstatat), which walks
// one path element instead of all of them; the 1,000 sources of a rerun
// mostly share a few directories.
struct parent_directory {
  std::string path;
  unique_fd fd;

  // stat(file) as ::stat does (errno set on failure).
  int stat(const std::string& file, struct stat& st) {
    const std::size_t slash = file.rfind('/');
    if (slash == std::string::npos || slash + 1 == file.size()) return ::stat(file.c_str(), &st);
    const std::string_view dir(file.data(), slash == 0 ? 1 : slash);
    if (!fd || dir != path) {
      path.assign(dir);
      fd = unique_fd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    }
    if (!fd) return ::stat(file.c_str(), &st);  // for the error it gives
    return ::fstatat(fd.get(), file.c_str() + slash + 1, &st, 0);
  }
};

// `path` made absolute and normal.
std::string root_of(const fs::path& path) {
  if (normal_absolute(path.native())) return path.native();  // as it is (most of a cached rerun's sources)
  std::error_code ec;
  std::string root =
      (path.is_absolute() ? path.lexically_normal() : fs::absolute(path, ec).lexically_normal()).native();
  if (ec) throw file_error(fmt::format("cannot resolve '{}': {}", path.string(), ec.message()));
  return root;
}

// The files of one tree, stat'ed; `light`: a file is only stat'ed (not
// opened) before the stat cache is asked. `root`: root_of(path), made here
// if it is empty.
// With `either`, `kind` becomes what the path is. `parent`: see parent_directory.
std::vector<found_file> list_tree(path_kind& kind, const fs::path& path, std::string& root, bool light,
                                  bool either = false, parent_directory* parent = nullptr) {
  const auto stat_root = [&](struct stat& st) {
    return parent != nullptr ? parent->stat(root, st) : ::stat(root.c_str(), &st);
  };
  if (root.empty()) root = root_of(path);
  struct stat st {};
  bool stated = false;
  if (either) {
    if (stat_root(st) != 0) throw file_error(fmt::format("cannot read '{}': {}", root, why(errno)));
    stated = true;
    kind = S_ISDIR(st.st_mode) ? path_kind::directory : path_kind::file;
  }
  if (!light || kind == path_kind::directory) check_readable(kind, path);

  std::vector<found_file> files;
  if (kind == path_kind::file) {
    if (!stated && stat_root(st) != 0) throw file_error(fmt::format("cannot read '{}': {}", root, why(errno)));
    if (S_ISDIR(st.st_mode)) throw file_error(fmt::format("'{}' is a directory, not a file", root));
    if (!S_ISREG(st.st_mode)) throw file_error(fmt::format("'{}' is not a regular file", root));
    found_file f;
    f.entry.executable = (st.st_mode & S_IXUSR) != 0;
    f.entry.size = static_cast<std::uint64_t>(st.st_size);
    f.row = row_of(root, st);
    files.push_back(std::move(f));
  } else {
    std::error_code ec;
    const fs::path top(root);
    for (fs::recursive_directory_iterator it(top, fs::directory_options::none, ec), end; !ec && it != end;
         it.increment(ec)) {
      const auto status = it->symlink_status(ec);
      if (ec) break;
      if (fs::is_directory(status)) continue;
      files.push_back(stat_entry(it->path(), it->path().lexically_relative(top).generic_string()));
    }
    if (ec) throw file_error(fmt::format("cannot list the directory '{}': {}", root, ec.message()));
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.entry.path < b.entry.path; });
  }
  return files;
}

// What the stat cache (or this process) already knows of `files`.
void look_up_known(std::vector<found_file*>& files, cache_store* stats) {
  if (files.empty()) return;
  if (stats != nullptr) {
    std::vector<const file_stat_row*> rows;
    rows.reserve(files.size());
    for (const auto* f : files) rows.push_back(&f->row);
    try {
      const auto known = stats->known_files(rows);
      for (std::size_t k = 0; k < files.size(); ++k) files[k]->known = known[k];
    } catch (const std::exception&) {
      // An unreadable stat cache only costs a rehash.
    }
  } else {
    const std::scoped_lock lock(memo_mutex);
    for (auto* f : files) {
      const auto it = memo().find(f->row.path);
      if (it != memo().end() && same_stat_fields(it->second.row, f->row)) f->known = it->second.known;
    }
  }
}

void remember(const std::vector<std::pair<file_stat_row, known_file_digest>>& learned, cache_store* stats) {
  if (learned.empty()) return;
  if (stats != nullptr) {
    try {
      stats->remember_files(learned);
    } catch (const std::exception&) {
      // Not remembered: hashed again next time.
    }
  } else {
    const std::scoped_lock lock(memo_mutex);
    for (const auto& [row, known] : learned) memo()[row.path] = memo_row{row, known};
  }
}

path_contents contents_of(path_kind kind, std::vector<found_file>& files) {
  path_contents out;
  out.entries.reserve(files.size());
  for (auto& f : files) out.entries.push_back(std::move(f.entry));
  // A file's digest is the XXH3-128 of its bytes (what xxh128sum prints).
  out.content = kind == path_kind::file ? out.entries.front().content : tree_digest(out.entries);
  return out;
}

}  // namespace

path_contents hash_tree(path_kind kind, const fs::path& path, cache_store* stats) {
  std::string root;
  std::vector<found_file> files = list_tree(kind, path, root, false);  // `kind` stays as it is
  std::vector<found_file*> all;
  all.reserve(files.size());
  for (auto& f : files) all.push_back(&f);
  look_up_known(all, stats);
  std::vector<std::pair<file_stat_row, known_file_digest>> learned;
  for (auto& f : files) hash_one(f, kind == path_kind::file ? root : joined(root, f.entry.path), learned);
  remember(learned, stats);
  return contents_of(kind, files);
}

std::vector<tree_result> hash_trees(std::span<const tree_request> requests, cache_store* stats) {
  return hash_trees(requests, [stats] { return stats; });
}

std::vector<tree_result> hash_trees(std::span<const tree_request> requests,
                                    const std::function<cache_store*()>& stats_when_listed) {
  std::vector<tree_result> out(requests.size());
  std::vector<std::vector<found_file>> files(requests.size());
  std::vector<std::string> roots(requests.size());
  // Listing (a stat per file) and hashing run on the caller's arena: the
  // trees are independent, and 1,000 sources stat'ed one after another are
  // most of a cached rerun of 1,000 command steps. Only the stat cache's
  // transaction between the two is one thread's.
  const auto each = [&](auto&& body) {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, requests.size(), 64),
                      [&](const tbb::blocked_range<std::size_t>& range) {
                        for (std::size_t r = range.begin(); r != range.end(); ++r) body(r);
                      });
  };
  // The roots first: the stat cache is asked for them (one transaction, on
  // another thread) while the files are stat'ed, and a single file's row
  // is compared with its stat fields after. Only a directory's files are
  // asked for once they are listed.
  std::vector<const std::string*> asked;
  std::vector<std::size_t> asked_as(requests.size(), static_cast<std::size_t>(-1));
  asked.reserve(requests.size());
  for (std::size_t r = 0; r < requests.size(); ++r) {
    out[r].kind = requests[r].kind;
    try {
      roots[r] = root_of(*requests[r].path);
      asked_as[r] = asked.size();
      asked.push_back(&roots[r]);
    } catch (const std::exception& e) {
      out[r].error = e.what();
    }
  }
  cache_store* stats = nullptr;
  std::exception_ptr no_store;
  std::vector<std::optional<cache_store::stored_file>> stored;
  tbb::task_group asking;
  asking.run([&] {
    try {
      stats = stats_when_listed();
    } catch (...) {
      no_store = std::current_exception();
      return;
    }
    if (stats == nullptr) return;  // the process's memo, asked below
    try {
      stored = stats->stored_files(asked);
    } catch (const std::exception&) {
      stored.clear();  // an unreadable stat cache only costs a rehash
    }
  });
  try {
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, requests.size(), 64), [&](const tbb::blocked_range<std::size_t>& range) {
          parent_directory parent;
          for (std::size_t r = range.begin(); r != range.end(); ++r) {
            if (!out[r].error.empty()) continue;
            try {
              files[r] = list_tree(out[r].kind, *requests[r].path, roots[r], true, requests[r].either, &parent);
            } catch (const std::exception& e) {
              out[r].error = e.what();
            }
          }
        });
  } catch (...) {
    asking.wait();  // the task refers to this frame
    throw;
  }
  asking.wait();
  if (no_store) std::rethrow_exception(no_store);
  std::vector<found_file*> rest;  // a directory's files, or every file without the roots' rows
  const bool have_rows = stats != nullptr && stored.size() == asked.size();
  for (std::size_t r = 0; r < requests.size(); ++r) {
    if (!out[r].error.empty()) continue;
    if (have_rows && out[r].kind == path_kind::file && files[r].size() == 1) {
      const auto& row = stored[asked_as[r]];
      if (row && same_stat_fields(row->row, files[r].front().row)) files[r].front().known = row->known;
      continue;
    }
    for (auto& f : files[r]) rest.push_back(&f);
  }
  look_up_known(rest, stats);  // one transaction for all of them
  std::vector<std::vector<std::pair<file_stat_row, known_file_digest>>> learned(requests.size());
  each([&](std::size_t r) {
    if (!out[r].error.empty()) return;
    try {
      for (auto& f : files[r])
        hash_one(f, out[r].kind == path_kind::file ? roots[r] : joined(roots[r], f.entry.path), learned[r]);
      out[r].contents = contents_of(out[r].kind, files[r]);
    } catch (const std::exception& e) {
      out[r].error = e.what();
    }
  });
  std::vector<std::pair<file_stat_row, known_file_digest>> all_learned;
  for (auto& l : learned) all_learned.insert(all_learned.end(), l.begin(), l.end());
  remember(all_learned, stats);
  return out;
}

path_contents hash_path(path_kind kind, const fs::path& path) { return hash_tree(kind, path, nullptr); }

void seal_file_params(const graph_description& graph, run_state& state, cache_store* stats) {
  for (std::size_t i = 0; i < graph.params.size(); ++i) {
    const auto& p = graph.params[i];
    if (p.slot.path_value == nullptr) continue;
    path_value* value = p.slot.path_value(state.param_slots[i], 0);
    if (value == nullptr) continue;
    try {
      if (stats != nullptr) {
        value->set_contents(hash_tree(value->kind(), value->path(), stats));
      } else {
        check_readable(value->kind(), value->path());
      }
    } catch (const file_error& e) {
      throw param_error(fmt::format("parameter '{}' ({}): {}", p.name, p.type, e.what()));
    }
  }
}

fs::path output_directories::make_directory(std::string_view step, std::size_t element) {
  const fs::path& where = base();  // named first: used() is true only once it is
  const std::size_t n = made_.fetch_add(1, std::memory_order_relaxed);
  std::string name(step);
  if (element != context::npos) name += fmt::format("-e{}", element);
  name += fmt::format("-{}", n);
  const fs::path dir = where / name;
  // One mkdir once the run's directory is there (every step's but the
  // first): create_directories would stat each parent first.
  if (::mkdir(dir.c_str(), 0777) == 0) return dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw file_error(fmt::format("cannot make the output directory '{}': {}", dir.string(), ec.message()));
  return dir;
}

digest file_content_key(const digest& content) {
  return hasher().update(std::string_view("penstock file bytes v1")).update(content).finish();
}

namespace {

digest file_bytes_type() { return hasher().update(std::string_view("penstock file bytes")).finish(); }

// Where entry `e` of `value` is (or was, when it was hashed).
fs::path source_of(const path_value& value, const path_entry& e) {
  return e.path.empty() ? value.path() : value.path() / e.path;
}

// Copies `from` into `out` in chunks, returning the digest of what it copied.
digest copy_into(const fs::path& from, std::ostream& out) {
  const unique_fd fd(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw file_error(fmt::format("cannot open '{}': {}", from.string(), why(errno)));
  std::vector<char> buffer(std::size_t{1} << 20);
  hasher h;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw file_error(fmt::format("cannot read '{}': {}", from.string(), why(errno)));
    if (n == 0) break;
    h.update(buffer.data(), static_cast<std::size_t>(n));
    if (!out.write(buffer.data(), n)) throw cache_error(fmt::format("cannot store '{}'", from.string()));
  }
  return h.finish();
}

void write_file(const fs::path& to, std::span<const std::byte> bytes) {
  unique_fd fd(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) throw cache_error(fmt::format("cannot create '{}': {}", to.string(), why(errno)));
  write_all(fd.get(), bytes.data(), bytes.size(), to);
  fd.close(to);
}

void copy_file_bytes(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(from, to, ec);
  if (ec) throw cache_error(fmt::format("cannot copy '{}' to '{}': {}", from.string(), to.string(), ec.message()));
}

// Makes entry `e` at `to` from the cache.
void restore_entry(cache_store& store, const path_entry& e, const fs::path& to, std::string_view name) {
  const digest key = file_content_key(e.content);
  const cache_result found = store.lookup(key);
  if (!found.hit()) {
    throw cache_error(fmt::format("the bytes of '{}{}{}' are no longer in the cache{}", name, e.path.empty() ? "" : "/",
                                  e.path, found.message.empty() ? "" : ": " + found.message));
  }
  if (e.symlink || found.entry.inline_value) {
    std::vector<std::byte> bytes;
    const cache_result read = store.get(key, bytes);
    if (!read.hit())
      throw cache_error(read.message.empty() ? "the bytes of a file were removed meanwhile" : read.message);
    if (e.symlink) {
      const std::string target(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      if (::symlink(target.c_str(), to.c_str()) != 0)
        throw cache_error(fmt::format("cannot make the link '{}': {}", to.string(), why(errno)));
      return;
    }
    write_file(to, bytes);
  } else {
    const fs::path blob = store.blob_path(e.content);
    if (::link(blob.c_str(), to.c_str()) != 0) {
      std::error_code ec;
      if (!fs::exists(blob, ec)) {
        store.erase(key);  // so that the recomputed value stores its bytes again
        throw cache_error(fmt::format("the bytes of '{}{}{}' are no longer in the cache: {} is missing", name,
                                      e.path.empty() ? "" : "/", e.path, blob.string()));
      }
      copy_file_bytes(blob, to);
    }
  }
  // Checked like any cached value (a hard link shares the blob's bytes;
  // the stat cache makes the next check a stat).
  const path_contents check = hash_tree(path_kind::file, to, &store);
  if (check.content != e.content) {
    throw cache_error(fmt::format("the stored bytes of '{}{}{}' are damaged (digest {} instead of {})", name,
                                  e.path.empty() ? "" : "/", e.path, check.content.hex(), e.content.hex()));
  }
  ::chmod(to.c_str(), e.executable ? 0555 : 0444);
}

}  // namespace

void store_files(cache_store& store, const path_value& value, std::string_view run_id) {
  const auto& contents = *value.contents();
  for (const auto& e : contents.entries) {
    const digest key = file_content_key(e.content);
    // Stored already, and its blob is there: nothing to write.
    if (const cache_result found = store.lookup(key); found.hit()) {
      std::error_code ec;
      if (found.entry.inline_value || fs::file_size(store.blob_path(e.content), ec) == found.entry.size) continue;
      store.erase(key);
    }
    const fs::path from = source_of(value, e);
    std::optional<std::string> target;
    if (e.symlink) target = link_target(from);
    const put_result put = store.put(
        key,
        [&](std::ostream& out) {
          if (target) {
            out.write(target->data(), static_cast<std::streamsize>(target->size()));
            return hasher().update(target->data(), target->size()).finish();
          }
          return copy_into(from, out);
        },
        put_info{.type = file_bytes_type(), .run_id = run_id});
    if (put.content != e.content) {
      throw cache_error(fmt::format("'{}' changed after the step returned it: not stored", from.string()));
    }
  }
}

void restore_files(cache_store& store, path_value& value) {
  const auto& contents = *value.contents();
  const std::string name = value.name();
  const fs::path files = store.directory() / "files";
  const fs::path home = files / contents.content.hex();
  const fs::path target = home / name;
  std::error_code ec;
  // Restored before (by this or another run): still the right bytes?
  if (fs::exists(fs::symlink_status(target, ec))) {
    try {
      if (hash_tree(value.kind(), target, &store).content == contents.content) {
        value.set_path(target);
        return;
      }
    } catch (const file_error&) {
      // made again below
    }
    fs::remove_all(home, ec);
  }
  // Made in a directory of its own, then renamed into place: another
  // process restoring the same value at the same time sees it whole or not at all.
  const fs::path staging = files / fmt::format(".tmp-{}-{:08x}", static_cast<long>(::getpid()), random_u32());
  fs::create_directories(staging, ec);
  if (ec) throw cache_error(fmt::format("cannot make '{}': {}", staging.string(), ec.message()));
  try {
    const fs::path staged = staging / name;
    if (value.kind() == path_kind::directory) fs::create_directories(staged);
    for (const auto& e : contents.entries) {
      const fs::path to = e.path.empty() ? staged : staged / e.path;
      if (!e.path.empty()) fs::create_directories(to.parent_path());
      restore_entry(store, e, to, name);
    }
    if (::rename(staging.c_str(), home.c_str()) != 0 && errno != EEXIST && errno != ENOTEMPTY) {
      throw cache_error(fmt::format("cannot move '{}' to '{}': {}", staging.string(), home.string(), why(errno)));
    }
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fs::remove_all(staging, ec);  // left only when another process won the rename
  value.set_path(target);
}

}  // namespace penstock::detail::r1
