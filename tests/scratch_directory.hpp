// A fresh directory under the system's temporary directory, removed with
// the object. Shared by the cache tests in tests/.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

namespace penstock_test {

class scratch_directory {
 public:
  // `prefix` names the test binary in the directory's name.
  explicit scratch_directory(std::string_view prefix = "penstock-test") {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    std::filesystem::create_directories(path_);
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

}  // namespace penstock_test
