// ps::file and ps::directory: data from outside the program as values. A
// parameter, step argument or step result of either type is keyed by its
// content, not its path: the bytes of a file; for a directory, the sorted
// relative paths of the files under it, their executable bits and contents.
// The runtime hashes them (a stat cache in the cache's index saves rehashing
// an unchanged file), stores a step's produced files in the cache, and
// restores them, read-only, at a real path on a hit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <penstock/digest.hpp>

namespace penstock {

// A file or directory that cannot be read: names the path and why.
class file_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class path_kind : std::uint8_t { file, directory };

// One regular file (or symbolic link) of a hashed tree.
struct path_entry {
  std::string path;  // relative to the tree's root, '/'-separated; "" for a ps::file itself
  bool executable = false;
  bool symlink = false;  // then `content` is the digest of the link's target text
  std::uint64_t size = 0;
  digest content;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(path, executable, symlink, size, content.high, content.low);
  }
};

// What hashing a file or a directory found.
struct path_contents {
  digest content;                   // of the whole tree: its entries, in path order
  std::vector<path_entry> entries;  // one for a file
};

namespace detail {

// The part ps::file and ps::directory share.
class path_value {
 public:
  path_value(path_kind kind, std::filesystem::path path) : kind_(kind), path_(std::move(path)) {}

  [[nodiscard]] path_kind kind() const noexcept { return kind_; }

  // Where it is. A value that came from the cache is at its restored copy
  // (read-only) under the cache directory. Throws file_error for a value
  // read from the cache inside another value (a struct holding a ps::file),
  // which the runtime does not restore.
  [[nodiscard]] const std::filesystem::path& path() const {
    if (!restored_) {
      throw file_error("ps::file '" + path_.string() +
                       "' was read from the cache inside another value, where its file is not restored: return "
                       "it as a step's whole result (or a ps::directory), or declare the step .cache(ps::never)");
    }
    return path_;
  }
  [[nodiscard]] std::string string() const { return path().string(); }
  // Its file or directory name, which is part of its key (a tool may read
  // `model.onnx` differently from `model.bin`); the folder it is in is not.
  [[nodiscard]] std::string name() const { return path_.filename().string(); }

  // What the runtime found when it hashed it: set for a parameter before any
  // step runs, for a step's result once the step returned, and for a value
  // read from the cache.
  [[nodiscard]] const std::optional<path_contents>& contents() const noexcept { return contents_; }

  // For the runtime.
  void set_contents(path_contents contents) { contents_ = std::move(contents); }
  void set_path(std::filesystem::path path) {
    path_ = std::move(path);
    restored_ = true;
  }
  // A value loaded from the cache, not yet restored: its name only.
  void set_unrestored(std::string name) {
    path_ = std::filesystem::path(std::move(name));
    restored_ = false;
  }

  friend bool operator==(const path_value& a, const path_value& b) { return a.kind_ == b.kind_ && a.path_ == b.path_; }
  // Printed as its path (`run` prints an output file's path).
  friend std::ostream& operator<<(std::ostream& out, const path_value& value) { return out << value.path_.string(); }
  // For the runtime: the path as it is, restored or not.
  [[nodiscard]] const std::filesystem::path& raw_path() const noexcept { return path_; }

 private:
  path_kind kind_ = path_kind::file;
  std::filesystem::path path_;
  bool restored_ = true;
  std::optional<path_contents> contents_;
};

}  // namespace detail

class file : public detail::path_value {
 public:
  static constexpr path_kind kind = path_kind::file;
  file() : path_value(kind, {}) {}
  explicit file(std::filesystem::path path) : path_value(kind, std::move(path)) {}
  // From the command line: `--param data=churn.csv`.
  static file parse(std::string_view text) {
    if (text.empty()) throw std::invalid_argument("expected a file path");
    return file(std::filesystem::path(std::string(text)));
  }
};

class directory : public detail::path_value {
 public:
  static constexpr path_kind kind = path_kind::directory;
  directory() : path_value(kind, {}) {}
  explicit directory(std::filesystem::path path) : path_value(kind, std::move(path)) {}
  static directory parse(std::string_view text) {
    if (text.empty()) throw std::invalid_argument("expected a directory path");
    return directory(std::filesystem::path(std::string(text)));
  }
};

template <class T>
inline constexpr bool is_path_value_v = std::is_base_of_v<detail::path_value, T>;

namespace detail {
// A tuple or pair of ps::file / ps::directory values (a command's several
// outputs): each is stored and restored like a whole ps::file result.
template <class T>
struct path_tuple : std::false_type {};
template <class... T>
struct path_tuple<std::tuple<T...>> : std::bool_constant<sizeof...(T) != 0 && (is_path_value_v<T> && ...)> {};
template <class A, class B>
struct path_tuple<std::pair<A, B>> : std::bool_constant<is_path_value_v<A> && is_path_value_v<B>> {};
template <class T>
inline constexpr bool path_tuple_v = path_tuple<T>::value;

// Other standard containers of ps::file / ps::directory: their files are
// keyed by content but not stored, so a step returning one is not cached.
template <class T>
struct holds_path_values : std::bool_constant<is_path_value_v<T>> {};
template <class T, class A>
struct holds_path_values<std::vector<T, A>> : holds_path_values<T> {};
template <class T>
struct holds_path_values<std::optional<T>> : holds_path_values<T> {};
template <class A, class B>
struct holds_path_values<std::pair<A, B>>
    : std::bool_constant<holds_path_values<A>::value || holds_path_values<B>::value> {};
template <class... T>
struct holds_path_values<std::tuple<T...>> : std::bool_constant<(holds_path_values<T>::value || ...)> {};
template <class T>
inline constexpr bool nested_path_values_v = holds_path_values<T>::value && !is_path_value_v<T> && !path_tuple_v<T>;
}  // namespace detail

namespace detail::r1 {
// Hashes the file or directory at `path` (no stat cache: the runtime's own
// calls use the cache's). Throws file_error naming the path.
[[nodiscard]] path_contents hash_path(path_kind kind, const std::filesystem::path& path);
}  // namespace detail::r1

namespace detail {
// What a path value is stored and keyed as: its kind, name and contents,
// never the folder it is in. A value not yet hashed (a ps::file inside
// another value) is hashed here.
template <class Archive, class T>
void save_path_value(Archive& archive, const T& value) {
  const path_contents contents = value.contents() ? *value.contents() : r1::hash_path(T::kind, value.path());
  archive(static_cast<std::uint8_t>(T::kind), value.name(), contents.content.high, contents.content.low,
          contents.entries);
}
template <class Archive, class T>
void load_path_value(Archive& archive, T& value) {
  std::uint8_t kind = 0;
  std::string name;
  path_contents contents;
  archive(kind, name, contents.content.high, contents.content.low, contents.entries);
  if (kind != static_cast<std::uint8_t>(T::kind)) throw file_error("a stored path value of another kind");
  // Until the runtime restores it: its name alone, no folder.
  value.set_unrestored(std::move(name));
  value.set_contents(std::move(contents));
}
}  // namespace detail

template <class Archive>
void save(Archive& archive, const file& value) {
  detail::save_path_value(archive, value);
}
template <class Archive>
void load(Archive& archive, file& value) {
  detail::load_path_value(archive, value);
}
template <class Archive>
void save(Archive& archive, const directory& value) {
  detail::save_path_value(archive, value);
}
template <class Archive>
void load(Archive& archive, directory& value) {
  detail::load_path_value(archive, value);
}

}  // namespace penstock
