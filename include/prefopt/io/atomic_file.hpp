#pragma once
/// \file
/// Atomic file writes: the content goes to a temporary file in the destination's folder, is
/// flushed and synced, then renamed over the destination. A crash or an error at any point leaves
/// either the old file or the complete new one, never a half-written file; the temporary is
/// removed on failure. (POSIX `rename` is atomic within one file system; that is why the temporary
/// lives beside the destination.)

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include "prefopt/core/assert.hpp"
#include "prefopt/core/error.hpp"

namespace prefopt::io {

namespace detail {
/// fsync(2) on a path (a no-op where unavailable); returns false on failure.
inline bool sync_path(const std::filesystem::path& path, bool directory) {
#if defined(__unix__) || defined(__APPLE__)
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
#else
  (void)path;
  (void)directory;
  return true;
#endif
}
}  // namespace detail

/// Writes `content` to `destination` atomically (see the file comment). Throws `prefopt::io_error`
/// naming the file and the failing step; the destination is then untouched.
inline void write_file_atomically(const std::filesystem::path& destination,
                                  std::string_view content) {
  namespace fs = std::filesystem;
  const fs::path folder = destination.has_parent_path() ? destination.parent_path() : fs::path(".");
  std::error_code ec;
  PREFOPT_CHECK(fs::is_directory(folder, ec), io_error, "write_file_atomically: folder ",
                folder.string(), " of ", destination.string(), " does not exist");
  const fs::path temporary = folder / ("." + destination.filename().string() + ".tmp");
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    PREFOPT_CHECK(out.good(), io_error, "write_file_atomically: cannot create ",
                  temporary.string());
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out.good()) {
      out.close();
      fs::remove(temporary, ec);
      PREFOPT_THROW(io_error, "write_file_atomically: writing ", temporary.string(), " failed");
    }
  }
  if (!detail::sync_path(temporary, false)) {
    fs::remove(temporary, ec);
    PREFOPT_THROW(io_error, "write_file_atomically: fsync of ", temporary.string(), " failed");
  }
  fs::rename(temporary, destination, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    PREFOPT_THROW(io_error, "write_file_atomically: renaming ", temporary.string(), " to ",
                  destination.string(), " failed: ", ec.message());
  }
  detail::sync_path(folder, true);  // persist the rename; best effort
}

}  // namespace prefopt::io
