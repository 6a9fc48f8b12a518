#pragma once
/// \file
/// Strict JSONL loader (and writer) for pairwise preference data.
///
/// Format: one JSON object per line (UTF-8, `\n` or `\r\n` line ends), with
///
///     {"prompt_ids": [int, ...], "chosen_ids": [int, ...], "rejected_ids": [int, ...],
///      "policy_chosen_logps": ..., "policy_rejected_logps": ...,          (optional)
///      "reference_chosen_logps": ..., "reference_rejected_logps": ...}    (optional)
///
/// Token ids are JSON integers in [0, 2^31 - 1] (and < `vocab_size` when given). A log-prob field
/// is either one number (the sequence log-prob, summed over response tokens) or an array with one
/// number per token of the matching response; values must be finite and <= 0. Every record must
/// use the same set of log-prob fields and the same form for each.
///
/// Strictness: every problem is a `prefopt::parse_error` whose message starts with
/// `file:line:` and names the field (with its array index) and what was expected — a line longer
/// than `max_line_bytes` (checked while reading, before parsing), invalid UTF-8 (with the byte
/// column), invalid JSON (nlohmann's message with the byte position), a missing field, a wrong
/// type, a negative / out-of-range / non-integer id, a non-finite or positive log-prob, an unknown
/// field (unless `allow_unknown_fields`), an empty response (unless `allow_empty_responses`), a
/// blank line, or an empty file. A file that cannot be opened or read is an `io_error`. Nothing is
/// ever dropped or truncated silently: only the explicit `max_prompt_length` /
/// `max_response_length` options truncate (prompts keep their last tokens, responses their first,
/// per-token log-probs with them), and the report counts every truncation. Each line is parsed by
/// `io::parse_json` (io/json_parse.hpp), so a key repeated in a record, a number beyond the range
/// of a double (`-1e400`) and nesting deeper than `max_record_depth` (8; a record needs 2) are
/// errors too, as is a per-token log-prob array whose sum overflows a double
/// (`[-1e308, -1e308]`: each value is finite, the sequence log-prob would be -inf).

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/io/json_parse.hpp"

namespace prefopt::io {

/// Deepest nesting of arrays and objects accepted in one JSONL record (a record needs 2).
inline constexpr std::size_t max_record_depth = 8;

/// Options of the JSONL loader.
struct jsonl_options {
  std::size_t max_line_bytes = std::size_t{1} << 24;  ///< longest accepted line (16 MiB)
  index_t max_prompt_length = 0;    ///< 0: no limit; else longer prompts keep their last tokens
  index_t max_response_length = 0;  ///< 0: no limit; else longer responses keep their first tokens
  std::int64_t vocab_size = 0;  ///< 0: ids only need to fit int32; else ids must be < vocab_size
  bool allow_unknown_fields = false;
  bool allow_empty_responses = false;
};

/// What the loader did.
struct jsonl_report {
  index_t records = 0;            ///< records loaded (= lines)
  index_t truncated_records = 0;  ///< records with at least one truncated sequence
  index_t truncated_prompts = 0;
  index_t truncated_responses = 0;  ///< chosen + rejected responses truncated
};

struct jsonl_load_result {
  data::preference_dataset dataset;
  jsonl_report report;
};

namespace detail {

/// Byte offset of the first invalid UTF-8 sequence in `s` (overlong forms, surrogates and code
/// points above U+10FFFF are invalid), or `npos` if `s` is valid.
[[nodiscard]] inline std::size_t find_invalid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1fU;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0fU;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07U;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0U) != 0x80U) return i;
      cp = (cp << 6U) | (cc & 0x3fU);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

/// Parses one record; `where` is "file:line".
class jsonl_record_parser {
 public:
  jsonl_record_parser(const jsonl_options& options, jsonl_report& report)
      : options_(options), report_(report) {}

  void parse_line(std::string_view line, const std::string& where, data::preference_dataset& out) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      PREFOPT_THROW(parse_error, where, ": blank line, expected a JSON object");
    }
    if (const auto bad = find_invalid_utf8(line); bad != std::string_view::npos) {
      PREFOPT_THROW(parse_error, where, ": invalid UTF-8 at byte ", bad + 1, " (byte 0x",
                    hex_byte(static_cast<unsigned char>(line[bad])), ")");
    }
    const nlohmann::json j = parse_json(line, where, {options_.max_line_bytes, max_record_depth});
    if (!j.is_object()) {
      PREFOPT_THROW(parse_error, where, ": expected a JSON object, got ", j.type_name());
    }
    for (const auto& item : j.items()) {
      if (!is_known(item.key()) && !options_.allow_unknown_fields) {
        PREFOPT_THROW(parse_error, where, ": field '", item.key(),
                      "': unknown field, expected prompt_ids, chosen_ids, rejected_ids or "
                      "{policy,reference}_{chosen,rejected}_logps");
      }
    }
    std::vector<token_id> prompt = ids(j, "prompt_ids", where, true);
    std::vector<token_id> chosen = ids(j, "chosen_ids", where, options_.allow_empty_responses);
    std::vector<token_id> rejected = ids(j, "rejected_ids", where, options_.allow_empty_responses);

    std::array<std::vector<double>, 4> tokens;
    std::array<data::logprob_value, 4> values{};
    for (const auto c : data::all_logprob_columns) {
      const auto k = static_cast<std::size_t>(c);
      const std::string name(data::column_name(c));
      const auto it = j.find(name);
      data::logprob_value& v = values[k];
      if (it == j.end()) {
        v.layout = data::logprob_layout::none;
      } else if (it->is_number()) {
        v.layout = data::logprob_layout::per_sequence;
        v.sequence = logprob(*it, name, where);
      } else if (it->is_array()) {
        v.layout = data::logprob_layout::per_token;
        const std::size_t expected = data::is_chosen(c) ? chosen.size() : rejected.size();
        if (it->size() != expected) {
          PREFOPT_THROW(parse_error, where, ": field '", name, "': ", it->size(),
                        " per-token log-probs, expected ", expected, " (one per token of ",
                        data::is_chosen(c) ? "chosen_ids" : "rejected_ids", ")");
        }
        tokens[k].reserve(it->size());
        for (std::size_t t = 0; t < it->size(); ++t) {
          tokens[k].push_back(logprob((*it)[t], name + "[" + std::to_string(t) + "]", where));
        }
      } else {
        PREFOPT_THROW(parse_error, where, ": field '", name,
                      "': expected a number (sequence log-prob) or an array of numbers (per-token "
                      "log-probs), got ",
                      it->type_name());
      }
      if (report_.records > 0 && v.layout != layouts_[k]) {
        PREFOPT_THROW(parse_error, where, ": field '", name, "': ", describe(v.layout),
                      " but the first record has ", describe(layouts_[k]),
                      "; every record must use the same log-prob fields and forms");
      }
      if (v.layout == data::logprob_layout::per_sequence && options_.max_response_length > 0 &&
          static_cast<index_t>(data::is_chosen(c) ? chosen.size() : rejected.size()) >
              options_.max_response_length) {
        PREFOPT_THROW(
            parse_error, where, ": field '", name,
            "': the response is longer than max_response_length = ", options_.max_response_length,
            " but its log-prob is a per-sequence sum, which cannot be truncated");
      }
    }
    // Explicit truncation (counted).
    bool truncated = false;
    if (options_.max_prompt_length > 0 &&
        static_cast<index_t>(prompt.size()) > options_.max_prompt_length) {
      prompt.erase(prompt.begin(),
                   prompt.end() - static_cast<std::ptrdiff_t>(options_.max_prompt_length));
      ++report_.truncated_prompts;
      truncated = true;
    }
    if (options_.max_response_length > 0) {
      const auto limit = static_cast<std::size_t>(options_.max_response_length);
      for (auto* response : {&chosen, &rejected}) {
        if (response->size() > limit) {
          response->resize(limit);
          ++report_.truncated_responses;
          truncated = true;
        }
      }
      for (auto& t : tokens) {
        if (t.size() > limit) t.resize(limit);
      }
    }
    if (truncated) ++report_.truncated_records;
    for (const auto c : data::all_logprob_columns) {
      const auto k = static_cast<std::size_t>(c);
      if (values[k].layout == data::logprob_layout::per_token) values[k].tokens = tokens[k];
    }
    try {
      out.add(prompt, chosen, rejected, values);
    } catch (const prefopt::error& e) {  // e.g. per-token log-probs whose sum overflows
      PREFOPT_THROW(parse_error, where, ": ", e.what());
    }
    if (report_.records == 0) {
      for (std::size_t k = 0; k < 4; ++k) layouts_[k] = values[k].layout;
    }
    ++report_.records;
  }

 private:
  static bool is_known(const std::string& key) {
    if (key == "prompt_ids" || key == "chosen_ids" || key == "rejected_ids") return true;
    for (const auto c : data::all_logprob_columns) {
      if (key == data::column_name(c)) return true;
    }
    return false;
  }

  static std::string hex_byte(unsigned char b) {
    constexpr const char* digits = "0123456789abcdef";
    return {digits[b >> 4U], digits[b & 0xfU]};
  }

  static const char* describe(data::logprob_layout l) {
    switch (l) {
      case data::logprob_layout::none:
        return "absent";
      case data::logprob_layout::per_sequence:
        return "a per-sequence number";
      case data::logprob_layout::per_token:
        return "a per-token array";
    }
    return "?";
  }

  std::vector<token_id> ids(const nlohmann::json& j, const char* field, const std::string& where,
                            bool allow_empty) const {
    const auto it = j.find(field);
    if (it == j.end()) {
      PREFOPT_THROW(parse_error, where, ": field '", field,
                    "': missing, expected an array of token ids");
    }
    if (!it->is_array()) {
      PREFOPT_THROW(parse_error, where, ": field '", field,
                    "': expected an array of token ids, got ", it->type_name());
    }
    if (it->empty() && !allow_empty) {
      PREFOPT_THROW(parse_error, where, ": field '", field,
                    "': empty, expected a non-empty array of token ids");
    }
    std::vector<token_id> out;
    out.reserve(it->size());
    constexpr auto max_id = static_cast<std::int64_t>(std::numeric_limits<token_id>::max());
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& e = (*it)[i];
      std::int64_t id = 0;
      if (e.is_number_unsigned()) {
        const auto u = e.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(max_id)) {
          PREFOPT_THROW(parse_error, where, ": field '", field, "[", i, "]': token id ", u,
                        " is out of range, expected an integer in [0, ", max_id, "]");
        }
        id = static_cast<std::int64_t>(u);
      } else if (e.is_number_integer()) {
        id = e.get<std::int64_t>();
        if (id < 0) {
          PREFOPT_THROW(parse_error, where, ": field '", field, "[", i, "]': token id ", id,
                        " is negative, expected an integer in [0, ", max_id, "]");
        }
        if (id > max_id) {
          PREFOPT_THROW(parse_error, where, ": field '", field, "[", i, "]': token id ", id,
                        " is out of range, expected an integer in [0, ", max_id, "]");
        }
      } else {
        PREFOPT_THROW(parse_error, where, ": field '", field, "[", i,
                      "]': expected an integer token id, got ",
                      e.is_number_float() ? "the non-integer number " + e.dump()
                                          : std::string(e.type_name()));
      }
      if (options_.vocab_size > 0 && id >= options_.vocab_size) {
        PREFOPT_THROW(parse_error, where, ": field '", field, "[", i, "]': token id ", id,
                      " is out of range, expected an id < vocab_size = ", options_.vocab_size);
      }
      out.push_back(static_cast<token_id>(id));
    }
    return out;
  }

  static double logprob(const nlohmann::json& e, const std::string& field,
                        const std::string& where) {
    if (!e.is_number()) {
      PREFOPT_THROW(parse_error, where, ": field '", field, "': expected a number, got ",
                    e.type_name());
    }
    const double v = e.get<double>();
    if (!std::isfinite(v) || v > 0.0) {
      PREFOPT_THROW(parse_error, where, ": field '", field, "': log-prob ", e.dump(),
                    " is out of range, expected a finite number <= 0");
    }
    return v;
  }

  const jsonl_options& options_;
  jsonl_report& report_;
  std::array<data::logprob_layout, 4> layouts_{};
};

}  // namespace detail

/// Parses JSONL `content` (the whole text); `source` names it in messages (e.g. the file name).
[[nodiscard]] inline jsonl_load_result parse_preference_jsonl(std::string_view content,
                                                              std::string_view source,
                                                              const jsonl_options& options = {}) {
  jsonl_load_result result;
  detail::jsonl_record_parser parser(options, result.report);
  std::size_t pos = 0;
  index_t line_number = 0;
  while (pos < content.size()) {
    ++line_number;
    const std::size_t nl = content.find('\n', pos);
    const std::size_t end = nl == std::string_view::npos ? content.size() : nl;
    std::string_view line = content.substr(pos, end - pos);
    const std::string where = std::string(source) + ":" + std::to_string(line_number);
    if (line.size() > options.max_line_bytes) {
      PREFOPT_THROW(parse_error, where, ": line is ", line.size(),
                    " bytes long, longer than max_line_bytes = ", options.max_line_bytes);
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    parser.parse_line(line, where, result.dataset);
    pos = end + 1;
  }
  if (result.report.records == 0) {
    PREFOPT_THROW(parse_error, source,
                  ": no records (empty file), expected one JSON object per line");
  }
  return result;
}

/// Loads a JSONL file (see the file comment). The file is read in blocks; a line longer than
/// `options.max_line_bytes` is rejected as soon as it exceeds the limit, before it is held whole.
[[nodiscard]] inline jsonl_load_result load_preference_jsonl(const std::filesystem::path& path,
                                                             const jsonl_options& options = {}) {
  std::ifstream in(path, std::ios::binary);
  PREFOPT_CHECK(in.good(), io_error, "load_preference_jsonl: cannot open ", path.string());
  const std::string source = path.string();
  jsonl_load_result result;
  detail::jsonl_record_parser parser(options, result.report);
  std::string line;
  std::array<char, 1 << 16> block{};
  index_t line_number = 1;
  const auto finish_line = [&]() {
    std::string_view view(line);
    if (!view.empty() && view.back() == '\r') view.remove_suffix(1);
    parser.parse_line(view, source + ":" + std::to_string(line_number), result.dataset);
    line.clear();
    ++line_number;
  };
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    std::size_t start = 0;
    while (start < got) {
      const auto* nl =
          static_cast<const char*>(std::memchr(block.data() + start, '\n', got - start));
      const std::size_t end = nl ? static_cast<std::size_t>(nl - block.data()) : got;
      if (line.size() + (end - start) > options.max_line_bytes) {
        PREFOPT_THROW(parse_error, source, ":", line_number,
                      ": line is longer than max_line_bytes = ", options.max_line_bytes);
      }
      line.append(block.data() + start, end - start);
      if (nl) finish_line();
      start = end + 1;
    }
  }
  PREFOPT_CHECK(in.eof(), io_error, "load_preference_jsonl: reading ", source, " failed");
  if (!line.empty()) finish_line();  // last line without a trailing newline
  if (result.report.records == 0) {
    PREFOPT_THROW(parse_error, source,
                  ": no records (empty file), expected one JSON object per line");
  }
  return result;
}

/// Serialises a dataset in the JSONL format above (log-prob fields in each column's layout).
[[nodiscard]] inline std::string to_preference_jsonl(const data::preference_dataset& d) {
  std::string out;
  for (index_t i = 0; i < d.size(); ++i) {
    nlohmann::ordered_json j;
    const auto as_array = [](std::span<const token_id> s) {
      return nlohmann::json(std::vector<token_id>(s.begin(), s.end()));
    };
    j["prompt_ids"] = as_array(d.prompts()[i]);
    j["chosen_ids"] = as_array(d.chosen()[i]);
    j["rejected_ids"] = as_array(d.rejected()[i]);
    for (const auto c : data::all_logprob_columns) {
      const std::string name(data::column_name(c));
      if (d.layout(c) == data::logprob_layout::per_sequence) {
        j[name] = d.sequence_logps(c)[static_cast<std::size_t>(i)];
      } else if (d.layout(c) == data::logprob_layout::per_token) {
        const auto t = d.token_logps(c)[i];
        j[name] = std::vector<double>(t.begin(), t.end());
      }
    }
    out += j.dump();
    out += '\n';
  }
  return out;
}

/// Writes `to_preference_jsonl(d)` atomically (io/atomic_file.hpp).
inline void save_preference_jsonl(const std::filesystem::path& path,
                                  const data::preference_dataset& d) {
  write_file_atomically(path, to_preference_jsonl(d));
}

}  // namespace prefopt::io
