#pragma once
/// \file
/// Bounded JSON parsing: the one entry point through which prefopt reads JSON text (game files,
/// the runner's configs, JSONL records), so that no input can exhaust the stack or the memory, or
/// escape as an exception outside `prefopt::error`.
///
/// `parse_json(text, where, limits)` checks, in this order, and throws `prefopt::parse_error`
/// whose message starts with `where` (a file name, or `file:line` for a JSONL record):
/// 1. the size: `text.size() <= limits.max_bytes`, before anything is scanned or allocated;
/// 2. a linear, non-recursive pre-scan, before nlohmann builds anything: the nesting depth of
///    arrays and objects `<= limits.max_depth`, and every number finite as a double (`1e400`,
///    `-1e400` and 400-digit integers are rejected; underflow to 0 is accepted); both name the
///    line and column;
/// 3. nlohmann's parse: a syntax error names the byte offset, line and column; a key repeated
///    in one object is rejected with the JSON pointer of the second occurrence (nlohmann would
///    keep the last value silently).
///
/// Why the depth bound: nlohmann parses without recursion, but copying, comparing and dumping a
/// `json` value recurse once per level, so a document nested 200,000 levels deep overflows the
/// stack in the code that uses it. Every document prefopt reads nests at most 8 levels.
/// Memory: nlohmann's DOM takes about 16 to 50 bytes per value and a value takes at least 2 bytes
/// of text, so a document at the default `max_bytes` (128 MiB) may take up to about 3 GiB to hold;
/// lower the limit where that matters.

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "prefopt/core/assert.hpp"

namespace prefopt::io {

/// Limits of `parse_json` (see the file comment).
struct json_limits {
  std::size_t max_bytes = std::size_t{128} << 20;  ///< longest accepted document (128 MiB)
  std::size_t max_depth = 64;                      ///< deepest nesting of arrays and objects
};

namespace detail {

/// Line and column (1-based) of byte `offset` of `text`.
struct text_position {
  std::size_t line = 1;
  std::size_t column = 1;
};
[[nodiscard]] inline text_position position_of(std::string_view text, std::size_t offset) {
  text_position p;
  offset = std::min(offset, text.size());
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

/// True if the number token `t` (JSON syntax, possibly malformed) might exceed the range of a
/// double: its decimal exponent estimate is at least 307. Cheap; `number_overflows` decides.
[[nodiscard]] inline bool number_may_overflow(std::string_view t) noexcept {
  std::size_t i = 0;
  if (i < t.size() && t[i] == '-') ++i;
  while (i < t.size() && t[i] == '0') ++i;
  long long magnitude = 0;  // digits before the point (without leading zeros), minus one
  std::size_t digits = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++digits, ++i;
  magnitude = static_cast<long long>(digits) - 1;
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (digits == 0) {
      while (i < t.size() && t[i] == '0') --magnitude, ++i;
    }
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  }
  long long exponent = 0;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool negative = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      exponent = std::min<long long>(exponent * 10 + (t[i] - '0'), 1'000'000'000);
      ++i;
    }
    if (negative) exponent = -exponent;
  }
  return magnitude + exponent >= 307;
}

/// True if the number token `t` does not fit a double (its magnitude rounds to infinity). Called
/// only for tokens `number_may_overflow` flags, so an out-of-range result is an overflow.
[[nodiscard]] inline bool number_overflows(std::string_view t) noexcept {
  double value = 0.0;
  const auto result = std::from_chars(t.data(), t.data() + t.size(), value);
  return result.ec == std::errc::result_out_of_range ||
         (result.ec == std::errc{} && !std::isfinite(value));
}

/// The pre-scan of `parse_json` (step 2 of the file comment).
inline void prescan_json(std::string_view text, std::string_view where, const json_limits& limits) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > limits.max_depth) {
          const auto p = position_of(text, i);
          PREFOPT_THROW(parse_error, where, ": nested deeper than max_depth = ", limits.max_depth,
                        " levels of arrays and objects at line ", p.line, ", column ", p.column);
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          std::size_t end = i;
          while (end < text.size() &&
                 ((text[end] >= '0' && text[end] <= '9') || text[end] == '-' || text[end] == '+' ||
                  text[end] == '.' || text[end] == 'e' || text[end] == 'E')) {
            ++end;
          }
          const std::string_view token = text.substr(i, end - i);
          if (number_may_overflow(token) && number_overflows(token)) {
            const auto p = position_of(text, i);
            PREFOPT_THROW(parse_error, where, ": number out of range at line ", p.line, ", column ",
                          p.column, ": ", token,
                          " does not fit a double (|x| <= 1.7976931348623157e308)");
          }
          i = end - 1;
        }
        break;
    }
  }
}

/// nlohmann parser callback that rejects a key repeated in one object, naming its JSON pointer.
class duplicate_key_check {
 public:
  explicit duplicate_key_check(std::string_view where) : where_(where) {}

  bool operator()(int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    switch (event) {
      case event_t::object_start:
        frames_.push_back({false, 0, {}, {}});
        break;
      case event_t::array_start:
        frames_.push_back({true, 0, {}, {}});
        break;
      case event_t::key: {
        frame& f = frames_.back();
        f.key = parsed.get_ref<const std::string&>();
        if (!f.keys.insert(f.key).second) {
          PREFOPT_THROW(parse_error, where_, ": ", pointer(), ": duplicate key \"", f.key,
                        "\" (each key may appear once in an object)");
        }
        break;
      }
      case event_t::object_end:
      case event_t::array_end:
        frames_.pop_back();
        element_done();
        break;
      case event_t::value:
        element_done();
        break;
    }
    return true;
  }

 private:
  struct frame {
    bool array;
    std::size_t index;
    std::string key;
    std::set<std::string> keys;
  };
  void element_done() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }
  /// RFC 6901 pointer of the current key.
  [[nodiscard]] std::string pointer() const {
    std::string p;
    for (const frame& f : frames_) {
      p += '/';
      if (f.array) {
        p += std::to_string(f.index);
        continue;
      }
      for (const char c : f.key) {
        if (c == '~') {
          p += "~0";
        } else if (c == '/') {
          p += "~1";
        } else {
          p += c;
        }
      }
    }
    return p;
  }

  std::string_view where_;
  std::vector<frame> frames_;
};

}  // namespace detail

/// Parses JSON `text` within `limits` (see the file comment); `where` names the text in messages.
/// Every failure is a `prefopt::parse_error`.
[[nodiscard]] inline nlohmann::json parse_json(std::string_view text, std::string_view where,
                                               const json_limits& limits = {}) {
  PREFOPT_CHECK(text.size() <= limits.max_bytes, parse_error, where, ": the document is ",
                text.size(), " bytes, larger than max_bytes = ", limits.max_bytes);
  detail::prescan_json(text, where, limits);
  try {
    return nlohmann::json::parse(text.begin(), text.end(), detail::duplicate_key_check(where));
  } catch (const nlohmann::json::parse_error& e) {
    const auto p = detail::position_of(text, e.byte > 0 ? e.byte - 1 : 0);
    PREFOPT_THROW(parse_error, where, ": invalid JSON, malformed at byte ", e.byte, " (line ",
                  p.line, ", column ", p.column, "): ", e.what());
  } catch (const nlohmann::json::exception& e) {  // out_of_range the pre-scan did not foresee
    PREFOPT_THROW(parse_error, where, ": number out of range or invalid JSON: ", e.what());
  }
}

/// Reads and parses the JSON file at `path` within `limits`: the file size is checked before it
/// is read. `io_error` when it cannot be read, `parse_error` (starting with the path) otherwise.
[[nodiscard]] inline nlohmann::json read_json_file(const std::filesystem::path& path,
                                                   const json_limits& limits = {}) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  PREFOPT_CHECK(!ec, io_error, "cannot read ", path.string(), ": ", ec.message());
  PREFOPT_CHECK(size <= limits.max_bytes, parse_error, path.string(), ": the file is ", size,
                " bytes, larger than max_bytes = ", limits.max_bytes);
  std::ifstream in(path, std::ios::binary);
  PREFOPT_CHECK(in.good(), io_error, "cannot open ", path.string());
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  PREFOPT_CHECK(static_cast<std::size_t>(in.gcount()) == text.size() && !in.bad(), io_error,
                "reading ", path.string(), " failed");
  return parse_json(text, path.string(), limits);
}

}  // namespace prefopt::io
