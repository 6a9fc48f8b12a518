#pragma once
// A fresh, per-test scratch folder under the test's working directory, removed afterwards, and
// whole-file read / write helpers for the io tests.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace prefopt::test {

class temp_dir {
 public:
  explicit temp_dir(const std::string& name)
      : path_(std::filesystem::current_path() / ("tmp_io_" + name)) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] std::filesystem::path operator/(const std::string& file) const {
    return path_ / file;
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// The bytes of file `p` (empty if it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Replaces file `p` with exactly the bytes `s`.
inline void write_file(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

}  // namespace prefopt::test
