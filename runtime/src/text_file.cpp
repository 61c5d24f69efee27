// text_file: see text_file.hpp.
#include "text_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

namespace penstock::detail::r1 {

void write_text_file(const std::filesystem::path& file, std::string_view text, std::string_view what) {
  const std::filesystem::path temporary = file.string() + fmt::format(".tmp-{}", ::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      const int error = errno;
      std::error_code ec;
      std::filesystem::remove(temporary, ec);
      throw std::runtime_error(
          fmt::format("cannot write the {} {}: {}", what, file.string(), std::strerror(error != 0 ? error : EIO)));
    }
  }
  std::error_code ec;
  std::filesystem::rename(temporary, file, ec);
  if (ec) {
    std::filesystem::remove(temporary, ec);
    throw std::runtime_error(fmt::format("cannot write the {} {}: {}", what, file.string(), ec.message()));
  }
}

}  // namespace penstock::detail::r1
