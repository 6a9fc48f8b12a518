#pragma once
/// \file
/// Persistent cache of reference log-probs for a preference dataset, so that the reference model
/// is run once per (dataset, model) and never silently reused for anything else.
///
/// A cache holds the per-sequence reference log-probs of the chosen and rejected responses and,
/// optionally, the per-token values. It is keyed by the dataset's content fingerprint
/// (`preference_dataset::fingerprint()`, FNV-1a 64 over all token ids) and a user-given model id
/// (e.g. "llama-3-8b-sft@rev-abc"). Loading verifies, in this order, and throws an `io_error` with
/// a message naming the file and the check that failed; its type says which kind of failure it is
/// (`cache_missing_error`: no file; `cache_corrupt_error`: checks 1, 2 and the values of 4;
/// `cache_mismatch_error`: check 3 and the lengths of 4), and `try_load_logprob_cache` reports the
/// same as a status without throwing:
/// 1. the size and structure (magic, version, flags, declared sizes): a file truncated at any
///    byte, or with trailing bytes, fails here;
/// 2. the checksum, FNV-1a 64 of every preceding byte (data/checksum.hpp): any changed byte fails
///    (each FNV-1a step is a bijection, so a single changed byte always changes the hash);
/// 3. the model id and the dataset fingerprint against the caller's: a different model, or a
///    dataset with any record changed, added, removed or reordered, fails;
/// 4. the values: finite, <= 0, per-token lengths equal to the dataset's response lengths, and
///    (with per-token values) each sequence value equal to the sum of its per-token values within
///    `1e-9 (1 + sum |t|)` (a sum that overflows to -inf never matches).
/// Encoding checks the values the same way, so a cache that could not be loaded is never written.
/// Files are written atomically (`io::write_file_atomically`).
///
/// Binary format, version 1, all integers little-endian, doubles as IEEE-754 bit patterns:
///
///     offset  size  field
///     0       8     magic "PFLPCACH"
///     8       4     u32 version = 1
///     12      4     u32 flags: bit 0 = per-token values present; other bits 0
///     16      8     u64 dataset fingerprint
///     24      8     u64 number of records N
///     32      8     u64 total chosen tokens Tc (0 without per-token values)
///     40      8     u64 total rejected tokens Tr (0 without per-token values)
///     48      4     u32 model id length M (<= 4096)
///     52      M     model id bytes
///     ...     8N    f64 chosen sequence log-probs, then 8N f64 rejected
///     ...           per-token only: 8N u64 chosen lengths, 8N u64 rejected lengths,
///                   8Tc f64 chosen token values, 8Tr f64 rejected token values
///     end-8   8     u64 FNV-1a 64 of all preceding bytes

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "prefopt/core/error.hpp"
#include "prefopt/data/checksum.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/io/atomic_file.hpp"

namespace prefopt {

/// `load_logprob_cache`: there is no cache file at the path.
class cache_missing_error : public io_error {
 public:
  using io_error::io_error;
};

/// `load_logprob_cache`: the file is not a valid cache (structure, checksum or values).
class cache_corrupt_error : public io_error {
 public:
  using io_error::io_error;
};

/// `load_logprob_cache`: a valid cache, made for another model id or dataset.
class cache_mismatch_error : public io_error {
 public:
  using io_error::io_error;
};

}  // namespace prefopt

namespace prefopt::io {

/// Reference log-probs of a dataset, as stored in a cache file.
struct logprob_cache {
  std::string model_id;
  std::uint64_t dataset_fingerprint = 0;
  std::vector<double> chosen;    ///< [N] reference sequence log-probs of the chosen responses
  std::vector<double> rejected;  ///< [N] ... of the rejected responses
  bool has_tokens = false;       ///< per-token values present
  data::ragged_buffer<double> chosen_tokens;    ///< laid out like dataset.chosen()
  data::ragged_buffer<double> rejected_tokens;  ///< laid out like dataset.rejected()

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(chosen.size()); }
};

namespace detail {

inline constexpr std::string_view cache_magic = "PFLPCACH";
inline constexpr std::uint32_t cache_version = 1;
inline constexpr std::size_t cache_header_bytes = 52;
inline constexpr std::size_t cache_max_model_id = 4096;

inline void put_u32(std::string& s, std::uint32_t x) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((x >> (8 * i)) & 0xffU));
}
inline void put_u64(std::string& s, std::uint64_t x) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((x >> (8 * i)) & 0xffU));
}
inline void put_f64(std::string& s, double x) {
  put_u64(s, std::bit_cast<std::uint64_t>(x));
}

/// Bounds-checked little-endian reader over the cache bytes.
class cache_reader {
 public:
  cache_reader(std::string_view bytes, std::string source)
      : bytes_(bytes), source_(std::move(source)) {}

  std::uint64_t u64(std::size_t at) const {
    std::uint64_t x = 0;
    for (std::size_t i = 0; i < 8; ++i) {
      x |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes_[at + i])) << (8 * i);
    }
    return x;
  }
  std::uint32_t u32(std::size_t at) const {
    std::uint32_t x = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      x |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes_[at + i])) << (8 * i);
    }
    return x;
  }
  double f64(std::size_t at) const { return std::bit_cast<double>(u64(at)); }
  [[noreturn]] void fail(const std::string& what) const {
    PREFOPT_THROW(cache_corrupt_error, "load_logprob_cache: ", source_, ": ", what);
  }

 private:
  std::string_view bytes_;
  std::string source_;
};

/// a + b, failing on overflow of size_t.
inline std::size_t checked_add(const cache_reader& r, std::size_t a, std::uint64_t b) {
  if (b > std::numeric_limits<std::size_t>::max() - a)
    r.fail("declared sizes overflow (corrupted header)");
  return a + static_cast<std::size_t>(b);
}
inline std::uint64_t checked_mul8(const cache_reader& r, std::uint64_t n) {
  if (n > std::numeric_limits<std::uint64_t>::max() / 8)
    r.fail("declared sizes overflow (corrupted header)");
  return n * 8;
}

/// Relative tolerance of the sequence-versus-per-token-sum check (file comment, check 4).
inline constexpr double cache_sum_tolerance = 1e-9;

/// The first problem with the values of `c` (check 4 of the file comment but the dataset's
/// lengths), or an empty string.
[[nodiscard]] inline std::string cache_value_problem(const logprob_cache& c) {
  const auto bad = [](double v) { return !std::isfinite(v) || v > 0.0; };
  for (const auto& [values, what] :
       {std::pair{&c.chosen, "chosen"}, std::pair{&c.rejected, "rejected"}}) {
    for (std::size_t i = 0; i < values->size(); ++i) {
      if (bad((*values)[i])) {
        return prefopt::detail::concat(what, "[", i, "] = ", (*values)[i],
                                       " is not a finite log-prob <= 0");
      }
    }
  }
  if (!c.has_tokens) return {};
  for (const auto& [tokens, sequence, what] :
       {std::tuple{&c.chosen_tokens, &c.chosen, "chosen"},
        std::tuple{&c.rejected_tokens, &c.rejected, "rejected"}}) {
    for (index_t i = 0; i < tokens->size(); ++i) {
      double sum = 0.0, magnitude = 0.0;
      const auto seq = (*tokens)[i];
      for (std::size_t t = 0; t < seq.size(); ++t) {
        if (bad(seq[t])) {
          return prefopt::detail::concat(what, "_tokens[", i, "][", t, "] = ", seq[t],
                                         " is not a finite log-prob <= 0");
        }
        sum += seq[t];
        magnitude += std::abs(seq[t]);
      }
      const double v = (*sequence)[static_cast<std::size_t>(i)];
      if (!std::isfinite(sum) || !(std::abs(v - sum) <= cache_sum_tolerance * (1.0 + magnitude))) {
        return prefopt::detail::concat(what, "[", i, "] = ", v, " but its ", seq.size(),
                                       " per-token values sum to ", sum, " (expected equal within ",
                                       cache_sum_tolerance, " (1 + sum |t|))");
      }
    }
  }
  return {};
}

}  // namespace detail

/// The cache for the reference columns of `dataset` (which must have `reference_chosen_logps` and
/// `reference_rejected_logps`; per-token values are stored when both are per-token).
[[nodiscard]] inline logprob_cache make_logprob_cache(const data::preference_dataset& dataset,
                                                      std::string model_id) {
  using data::logprob_column;
  using data::logprob_layout;
  constexpr const char* fn = "make_logprob_cache";
  const auto lc = dataset.layout(logprob_column::reference_chosen);
  const auto lr = dataset.layout(logprob_column::reference_rejected);
  PREFOPT_CHECK(lc != logprob_layout::none && lr != logprob_layout::none, invalid_argument, fn,
                ": the dataset has no reference_chosen_logps / reference_rejected_logps");
  PREFOPT_CHECK(model_id.size() <= detail::cache_max_model_id, invalid_argument, fn,
                ": model_id is ", model_id.size(), " bytes, expected at most ",
                detail::cache_max_model_id);
  logprob_cache c;
  c.model_id = std::move(model_id);
  c.dataset_fingerprint = dataset.fingerprint();
  c.chosen = dataset.sequence_logps(logprob_column::reference_chosen);
  c.rejected = dataset.sequence_logps(logprob_column::reference_rejected);
  if (lc == logprob_layout::per_token && lr == logprob_layout::per_token) {
    c.has_tokens = true;
    c.chosen_tokens = dataset.token_logps(logprob_column::reference_chosen);
    c.rejected_tokens = dataset.token_logps(logprob_column::reference_rejected);
  }
  return c;
}

/// The bytes of a cache file (format in the file comment).
[[nodiscard]] inline std::string encode_logprob_cache(const logprob_cache& c) {
  constexpr const char* fn = "encode_logprob_cache";
  PREFOPT_CHECK(c.rejected.size() == c.chosen.size(), shape_error, fn, ": rejected has ",
                c.rejected.size(), " values, expected ", c.chosen.size());
  PREFOPT_CHECK(c.model_id.size() <= detail::cache_max_model_id, invalid_argument, fn,
                ": model_id is ", c.model_id.size(), " bytes, expected at most ",
                detail::cache_max_model_id);
  if (c.has_tokens) {
    PREFOPT_CHECK(c.chosen_tokens.size() == c.size() && c.rejected_tokens.size() == c.size(),
                  shape_error, fn, ": per-token values for ", c.chosen_tokens.size(), " / ",
                  c.rejected_tokens.size(), " records, expected ", c.size());
  }
  if (const std::string problem = detail::cache_value_problem(c); !problem.empty()) {
    PREFOPT_THROW(invalid_argument, fn, ": ", problem);
  }
  std::string s;
  s.append(detail::cache_magic);
  detail::put_u32(s, detail::cache_version);
  detail::put_u32(s, c.has_tokens ? 1U : 0U);
  detail::put_u64(s, c.dataset_fingerprint);
  detail::put_u64(s, c.chosen.size());
  detail::put_u64(s,
                  c.has_tokens ? static_cast<std::uint64_t>(c.chosen_tokens.total_length()) : 0U);
  detail::put_u64(s,
                  c.has_tokens ? static_cast<std::uint64_t>(c.rejected_tokens.total_length()) : 0U);
  detail::put_u32(s, static_cast<std::uint32_t>(c.model_id.size()));
  s.append(c.model_id);
  for (const double v : c.chosen) detail::put_f64(s, v);
  for (const double v : c.rejected) detail::put_f64(s, v);
  if (c.has_tokens) {
    for (index_t i = 0; i < c.size(); ++i)
      detail::put_u64(s, static_cast<std::uint64_t>(c.chosen_tokens.length(i)));
    for (index_t i = 0; i < c.size(); ++i)
      detail::put_u64(s, static_cast<std::uint64_t>(c.rejected_tokens.length(i)));
    for (const double v : c.chosen_tokens.values()) detail::put_f64(s, v);
    for (const double v : c.rejected_tokens.values()) detail::put_f64(s, v);
  }
  detail::put_u64(s, data::fnv1a64_of(s));
  return s;
}

/// Decodes and verifies cache bytes (checks 1, 2 and 4 of the file comment; not the key).
/// `source` names the bytes in messages.
[[nodiscard]] inline logprob_cache decode_logprob_cache(std::string_view bytes,
                                                        const std::string& source) {
  const detail::cache_reader r(bytes, source);
  const std::size_t size = bytes.size();
  if (size < detail::cache_header_bytes + 8) {
    r.fail("truncated: " + std::to_string(size) + " bytes, expected at least " +
           std::to_string(detail::cache_header_bytes + 8));
  }
  if (bytes.substr(0, 8) != detail::cache_magic) r.fail("not a prefopt log-prob cache (bad magic)");
  const std::uint32_t version = r.u32(8);
  if (version != detail::cache_version) {
    r.fail("unsupported version " + std::to_string(version) + ", expected " +
           std::to_string(detail::cache_version));
  }
  const std::uint32_t flags = r.u32(12);
  if ((flags & ~1U) != 0) r.fail("unknown flags " + std::to_string(flags) + " (corrupted header)");
  const bool tokens = (flags & 1U) != 0;
  const std::uint64_t n = r.u64(24);
  const std::uint64_t tc = r.u64(32);
  const std::uint64_t tr = r.u64(40);
  const std::uint32_t m = r.u32(48);
  if (m > detail::cache_max_model_id)
    r.fail("model id length " + std::to_string(m) + " exceeds 4096 (corrupted header)");
  if (!tokens && (tc != 0 || tr != 0))
    r.fail("token counts without per-token values (corrupted header)");
  // Expected total size.
  std::size_t expected = detail::checked_add(r, detail::cache_header_bytes, m);
  const std::uint64_t seq_bytes = detail::checked_mul8(r, n);
  expected = detail::checked_add(r, expected, seq_bytes);
  expected = detail::checked_add(r, expected, seq_bytes);
  if (tokens) {
    expected = detail::checked_add(r, expected, seq_bytes);
    expected = detail::checked_add(r, expected, seq_bytes);
    expected = detail::checked_add(r, expected, detail::checked_mul8(r, tc));
    expected = detail::checked_add(r, expected, detail::checked_mul8(r, tr));
  }
  expected = detail::checked_add(r, expected, 8);
  if (size != expected) {
    r.fail(std::string(size < expected ? "truncated" : "has trailing bytes") + ": " +
           std::to_string(size) + " bytes, the header declares " + std::to_string(expected));
  }
  const std::uint64_t stored = r.u64(size - 8);
  const std::uint64_t actual = data::fnv1a64_of(bytes.substr(0, size - 8));
  if (stored != actual) {
    std::ostringstream os;
    os << "checksum mismatch (stored 0x" << std::hex << stored << ", computed 0x" << actual
       << "): the file is corrupted";
    r.fail(os.str());
  }
  logprob_cache c;
  c.dataset_fingerprint = r.u64(16);
  c.model_id.assign(bytes.substr(detail::cache_header_bytes, m));
  c.has_tokens = tokens;
  std::size_t at = detail::cache_header_bytes + m;
  const auto count = static_cast<std::size_t>(n);
  const auto read_values = [&](std::vector<double>& out, std::size_t k) {
    out.resize(k);
    for (std::size_t i = 0; i < k; ++i, at += 8) out[i] = r.f64(at);
  };
  read_values(c.chosen, count);
  read_values(c.rejected, count);
  if (tokens) {
    std::vector<std::uint64_t> len_c(count), len_r(count);
    std::uint64_t sum_c = 0, sum_r = 0;
    for (std::size_t i = 0; i < count; ++i, at += 8) {
      len_c[i] = r.u64(at);
      if (len_c[i] > tc) r.fail("chosen length " + std::to_string(i) + " exceeds the token count");
      sum_c += len_c[i];
    }
    for (std::size_t i = 0; i < count; ++i, at += 8) {
      len_r[i] = r.u64(at);
      if (len_r[i] > tr)
        r.fail("rejected length " + std::to_string(i) + " exceeds the token count");
      sum_r += len_r[i];
    }
    if (sum_c != tc || sum_r != tr) r.fail("per-token lengths do not add up to the token counts");
    std::vector<double> values;
    for (auto [lens, out] :
         {std::pair{&len_c, &c.chosen_tokens}, std::pair{&len_r, &c.rejected_tokens}}) {
      for (std::size_t i = 0; i < count; ++i) {
        read_values(values, static_cast<std::size_t>((*lens)[i]));
        out->push_back(values);
      }
    }
  }
  if (const std::string problem = detail::cache_value_problem(c); !problem.empty()) r.fail(problem);
  return c;
}

/// Writes the cache atomically to `path`.
inline void save_logprob_cache(const std::filesystem::path& path, const logprob_cache& c) {
  write_file_atomically(path, encode_logprob_cache(c));
}

/// Loads and verifies the cache at `path` for `dataset` and `model_id` (all four checks of the
/// file comment). Throws `cache_missing_error` when there is no file at `path`,
/// `cache_corrupt_error` when the file is not a valid cache, `cache_mismatch_error` when it is a
/// valid cache for another model or dataset, and `io_error` when reading fails; never returns
/// data for another dataset or model.
[[nodiscard]] inline logprob_cache load_logprob_cache(const std::filesystem::path& path,
                                                      const data::preference_dataset& dataset,
                                                      std::string_view model_id) {
  std::error_code ec;
  PREFOPT_CHECK(std::filesystem::exists(path, ec), cache_missing_error,
                "load_logprob_cache: no cache at ", path.string());
  std::ifstream in(path, std::ios::binary);
  PREFOPT_CHECK(in.good(), io_error, "load_logprob_cache: cannot open ", path.string());
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PREFOPT_CHECK(!in.bad(), io_error, "load_logprob_cache: reading ", path.string(), " failed");
  const std::string source = path.string();
  logprob_cache c = decode_logprob_cache(bytes, source);
  PREFOPT_CHECK(c.model_id == model_id, cache_mismatch_error, "load_logprob_cache: ", source,
                ": made with model '", c.model_id, "', expected model '", model_id,
                "'; recompute the reference log-probs");
  const std::uint64_t fp = dataset.fingerprint();
  if (c.dataset_fingerprint != fp) {
    std::ostringstream os;
    os << "load_logprob_cache: " << source << ": dataset fingerprint mismatch (cache 0x" << std::hex
       << c.dataset_fingerprint << ", dataset 0x" << fp
       << "): the cache was made for different data; recompute the reference log-probs";
    PREFOPT_THROW(cache_mismatch_error, os.str());
  }
  PREFOPT_CHECK(c.size() == dataset.size(), cache_mismatch_error, "load_logprob_cache: ", source,
                ": ", c.size(), " records, the dataset has ", dataset.size());
  if (c.has_tokens) {
    for (index_t i = 0; i < c.size(); ++i) {
      PREFOPT_CHECK(c.chosen_tokens.length(i) == dataset.chosen().length(i) &&
                        c.rejected_tokens.length(i) == dataset.rejected().length(i),
                    cache_mismatch_error, "load_logprob_cache: ", source, ": record ", i,
                    ": per-token lengths do not match the dataset's responses");
    }
  }
  return c;
}

/// Why `try_load_logprob_cache` did or did not return a cache.
enum class cache_status {
  loaded,    ///< a verified cache for this dataset and model
  missing,   ///< no file at the path (e.g. the first run): compute and save one
  corrupt,   ///< the file is not a valid cache (truncated, changed bytes, bad values)
  mismatch,  ///< a valid cache made for another model or dataset (stale)
};

/// The outcome of `try_load_logprob_cache`.
struct cache_load_result {
  cache_status status = cache_status::missing;
  std::optional<logprob_cache> cache;  ///< set iff `status == loaded`
  std::string reason;                  ///< the message `load_logprob_cache` would have thrown
  [[nodiscard]] explicit operator bool() const noexcept { return status == cache_status::loaded; }
};

/// `load_logprob_cache` without exceptions for the expected outcomes: a missing, corrupt or stale
/// cache comes back as a status with its reason. A read failure of an existing file still throws
/// `io_error`.
[[nodiscard]] inline cache_load_result try_load_logprob_cache(
    const std::filesystem::path& path, const data::preference_dataset& dataset,
    std::string_view model_id) {
  cache_load_result r;
  try {
    r.cache = load_logprob_cache(path, dataset, model_id);
    r.status = cache_status::loaded;
  } catch (const cache_missing_error& e) {
    r.status = cache_status::missing;
    r.reason = e.what();
  } catch (const cache_corrupt_error& e) {
    r.status = cache_status::corrupt;
    r.reason = e.what();
  } catch (const cache_mismatch_error& e) {
    r.status = cache_status::mismatch;
    r.reason = e.what();
  }
  return r;
}

/// Sets the dataset's reference columns from a verified cache (per-token when available).
/// Throws if the cache does not match the dataset's fingerprint.
inline void apply_logprob_cache(const logprob_cache& c, data::preference_dataset& dataset) {
  PREFOPT_CHECK(c.dataset_fingerprint == dataset.fingerprint(), io_error,
                "apply_logprob_cache: the cache's dataset fingerprint does not match the dataset");
  if (c.has_tokens) {
    dataset.set_token_logps(data::logprob_column::reference_chosen, c.chosen_tokens);
    dataset.set_token_logps(data::logprob_column::reference_rejected, c.rejected_tokens);
  } else {
    dataset.set_sequence_logps(data::logprob_column::reference_chosen, c.chosen);
    dataset.set_sequence_logps(data::logprob_column::reference_rejected, c.rejected);
  }
}

}  // namespace prefopt::io
