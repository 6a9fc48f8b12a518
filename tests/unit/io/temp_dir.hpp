#pragma once
// A fresh, per-test scratch folder under the test's working directory, removed afterwards.

#include <filesystem>
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

}  // namespace prefopt::test
