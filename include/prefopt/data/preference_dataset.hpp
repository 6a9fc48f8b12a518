#pragma once
/// \file
/// Pairwise preference data: an owning ragged buffer, the `preference_dataset` (prompt, chosen and
/// rejected token ids per record, plus optional policy / reference log-probs, per sequence or per
/// token), ragged batching, and the content fingerprint used by the reference log-prob cache.
///
/// Storage is columnar: all prompts back to back with offsets, likewise chosen and rejected
/// responses (the `ragged_view` layout of core/types.hpp), so batches and losses read them without
/// copies. Log-probs are stored in double. Each of the four log-prob columns (policy / reference x
/// chosen / rejected) has one layout for the whole dataset: absent, one number per sequence (the
/// sum over response tokens), or one number per response token (aligned with the response ids).
/// Records are never dropped or altered silently: `add` validates and throws.

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/checksum.hpp"

namespace prefopt::data {

/// A growable ragged array: sequence `i` is `values[offsets[i], offsets[i+1])`.
template <class T>
class ragged_buffer {
 public:
  ragged_buffer() = default;

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(offsets_.size()) - 1; }
  [[nodiscard]] index_t total_length() const noexcept {
    return static_cast<index_t>(values_.size());
  }
  [[nodiscard]] index_t length(index_t i) const {
    PREFOPT_ASSERT(i >= 0 && i < size());
    return offsets_[static_cast<std::size_t>(i) + 1] - offsets_[static_cast<std::size_t>(i)];
  }
  [[nodiscard]] std::span<const T> operator[](index_t i) const {
    PREFOPT_ASSERT(i >= 0 && i < size());
    const auto b = static_cast<std::size_t>(offsets_[static_cast<std::size_t>(i)]);
    return std::span<const T>(values_).subspan(b, static_cast<std::size_t>(length(i)));
  }
  void push_back(std::span<const T> sequence) {
    values_.insert(values_.end(), sequence.begin(), sequence.end());
    offsets_.push_back(static_cast<index_t>(values_.size()));
  }
  void clear() noexcept {
    offsets_.assign(1, 0);
    values_.clear();
  }
  [[nodiscard]] ragged_view<const T> view() const noexcept { return {offsets_, values_}; }
  [[nodiscard]] ragged_view<T> view() noexcept { return {offsets_, values_}; }
  [[nodiscard]] const std::vector<index_t>& offsets() const noexcept { return offsets_; }
  [[nodiscard]] const std::vector<T>& values() const noexcept { return values_; }
  [[nodiscard]] std::vector<T>& values() noexcept { return values_; }

  friend bool operator==(const ragged_buffer&, const ragged_buffer&) = default;

 private:
  std::vector<index_t> offsets_{0};
  std::vector<T> values_;
};

/// Layout of one log-prob column.
enum class logprob_layout : std::uint8_t { none = 0, per_sequence = 1, per_token = 2 };

/// The four optional log-prob columns.
enum class logprob_column : std::uint8_t {
  policy_chosen = 0,
  policy_rejected = 1,
  reference_chosen = 2,
  reference_rejected = 3,
};
inline constexpr std::array<logprob_column, 4> all_logprob_columns{
    logprob_column::policy_chosen, logprob_column::policy_rejected,
    logprob_column::reference_chosen, logprob_column::reference_rejected};

/// JSONL field names of the columns (`policy_chosen_logps`, ...).
[[nodiscard]] constexpr std::string_view column_name(logprob_column c) noexcept {
  switch (c) {
    case logprob_column::policy_chosen:
      return "policy_chosen_logps";
    case logprob_column::policy_rejected:
      return "policy_rejected_logps";
    case logprob_column::reference_chosen:
      return "reference_chosen_logps";
    case logprob_column::reference_rejected:
      return "reference_rejected_logps";
  }
  return "?";
}
/// True for the columns aligned with the chosen response.
[[nodiscard]] constexpr bool is_chosen(logprob_column c) noexcept {
  return c == logprob_column::policy_chosen || c == logprob_column::reference_chosen;
}

/// Log-probs of one record for one column: nothing, a sequence value, or per-token values.
struct logprob_value {
  logprob_layout layout = logprob_layout::none;
  double sequence = 0.0;                ///< used when `layout == per_sequence`
  std::span<const double> tokens = {};  ///< used when `layout == per_token`

  static logprob_value none() noexcept { return {}; }
  static logprob_value of_sequence(double v) noexcept {
    return {logprob_layout::per_sequence, v, {}};
  }
  static logprob_value of_tokens(std::span<const double> t) noexcept {
    return {logprob_layout::per_token, 0.0, t};
  }
};

/// A ragged batch of preference pairs (owning), as produced by `preference_dataset::batch`.
/// `*_lengths` are response lengths; `sequence_logps[c]` holds the `[B]` sequence log-probs of
/// column `c` when the dataset has that column (else it is empty).
struct preference_batch {
  std::vector<index_t> indices;  ///< dataset records in this batch, in order
  ragged_buffer<token_id> prompts;
  ragged_buffer<token_id> chosen;
  ragged_buffer<token_id> rejected;
  std::vector<index_t> chosen_lengths;
  std::vector<index_t> rejected_lengths;
  std::array<vector_d, 4> sequence_logps;

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(indices.size()); }
  [[nodiscard]] const vector_d& logps(logprob_column c) const noexcept {
    return sequence_logps[static_cast<std::size_t>(c)];
  }
};

/// A dataset of preference pairs `(prompt, chosen, rejected)` with optional log-probs.
class preference_dataset {
 public:
  preference_dataset() = default;

  [[nodiscard]] index_t size() const noexcept { return prompts_.size(); }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }

  [[nodiscard]] const ragged_buffer<token_id>& prompts() const noexcept { return prompts_; }
  [[nodiscard]] const ragged_buffer<token_id>& chosen() const noexcept { return chosen_; }
  [[nodiscard]] const ragged_buffer<token_id>& rejected() const noexcept { return rejected_; }

  /// Layout of a log-prob column (`none` until the first record fixes it).
  [[nodiscard]] logprob_layout layout(logprob_column c) const noexcept {
    return columns_[static_cast<std::size_t>(c)].layout;
  }

  /// Appends a record. Token ids must be >= 0; per-token log-probs must have one entry per token
  /// of the matching response; every log-prob must be finite and <= 0, and so must the sum of each
  /// per-token column (the sequence log-prob; it overflows for values near -1.8e308). The first
  /// record fixes the layout of each column; later records must use the same layouts. Throws
  /// `invalid_argument` (naming the record index and the column) and leaves the dataset unchanged
  /// on error.
  void add(std::span<const token_id> prompt, std::span<const token_id> chosen,
           std::span<const token_id> rejected, const std::array<logprob_value, 4>& logps = {}) {
    constexpr const char* fn = "preference_dataset::add";
    const index_t record = size();
    std::array<double, 4> sums{};  // per-token columns: the sequence log-probs
    check_ids(fn, record, "prompt_ids", prompt);
    check_ids(fn, record, "chosen_ids", chosen);
    check_ids(fn, record, "rejected_ids", rejected);
    for (const logprob_column c : all_logprob_columns) {
      const auto& v = logps[static_cast<std::size_t>(c)];
      const auto& col = columns_[static_cast<std::size_t>(c)];
      PREFOPT_CHECK(record == 0 || v.layout == col.layout, invalid_argument, fn, ": record ",
                    record, ": ", column_name(c), " has layout ", layout_name(v.layout),
                    " but earlier records have ", layout_name(col.layout),
                    "; every record must use the same layout");
      if (v.layout == logprob_layout::per_sequence) {
        check_logprob(fn, record, c, v.sequence, -1);
      } else if (v.layout == logprob_layout::per_token) {
        const std::size_t expected = is_chosen(c) ? chosen.size() : rejected.size();
        PREFOPT_CHECK(v.tokens.size() == expected, invalid_argument, fn, ": record ", record, ": ",
                      column_name(c), " has ", v.tokens.size(), " per-token values, expected ",
                      expected, " (one per ", is_chosen(c) ? "chosen" : "rejected", " token)");
        double sum = 0.0;
        for (std::size_t t = 0; t < v.tokens.size(); ++t) {
          check_logprob(fn, record, c, v.tokens[t], static_cast<index_t>(t));
          sum += v.tokens[t];
        }
        check_token_sum(fn, record, c, sum, v.tokens.size());
        sums[static_cast<std::size_t>(c)] = sum;
      }
    }
    // All checks passed: commit.
    prompts_.push_back(prompt);
    chosen_.push_back(chosen);
    rejected_.push_back(rejected);
    for (const logprob_column c : all_logprob_columns) {
      const auto& v = logps[static_cast<std::size_t>(c)];
      auto& col = columns_[static_cast<std::size_t>(c)];
      col.layout = v.layout;
      if (v.layout == logprob_layout::per_sequence) {
        col.sequence.push_back(v.sequence);
      } else if (v.layout == logprob_layout::per_token) {
        col.tokens.push_back(v.tokens);
        col.sequence.push_back(sums[static_cast<std::size_t>(c)]);
      }
    }
  }

  /// Sequence log-probs of a column (`[size()]`): the stored values, or per-token sums.
  /// Throws if the column is absent.
  [[nodiscard]] const std::vector<double>& sequence_logps(logprob_column c) const {
    const auto& col = columns_[static_cast<std::size_t>(c)];
    PREFOPT_CHECK(col.layout != logprob_layout::none || empty(), invalid_argument,
                  "preference_dataset::sequence_logps: the dataset has no ", column_name(c));
    return col.sequence;
  }

  /// Per-token log-probs of a column, aligned with `chosen()` / `rejected()`. Throws unless the
  /// column is per-token.
  [[nodiscard]] const ragged_buffer<double>& token_logps(logprob_column c) const {
    const auto& col = columns_[static_cast<std::size_t>(c)];
    PREFOPT_CHECK(col.layout == logprob_layout::per_token, invalid_argument,
                  "preference_dataset::token_logps: ", column_name(c), " is ",
                  layout_name(col.layout), ", expected per_token");
    return col.tokens;
  }

  /// Replaces (or adds) a column with per-sequence values (`[size()]`, finite, <= 0), e.g.
  /// reference log-probs loaded from a cache. Validates everything before changing anything.
  void set_sequence_logps(logprob_column c, std::span<const double> values) {
    constexpr const char* fn = "preference_dataset::set_sequence_logps";
    PREFOPT_CHECK(static_cast<index_t>(values.size()) == size(), shape_error, fn, ": ",
                  column_name(c), " has ", values.size(), " values, expected ", size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      check_logprob(fn, static_cast<index_t>(i), c, values[i], -1);
    }
    auto& col = columns_[static_cast<std::size_t>(c)];
    col.layout = logprob_layout::per_sequence;
    col.sequence.assign(values.begin(), values.end());
    col.tokens.clear();
  }

  /// Replaces (or adds) a column with per-token values laid out like `chosen()` / `rejected()`
  /// (each finite and <= 0, each record's sum finite). Validates everything before changing
  /// anything.
  void set_token_logps(logprob_column c, const ragged_buffer<double>& values) {
    constexpr const char* fn = "preference_dataset::set_token_logps";
    const auto& responses = is_chosen(c) ? chosen_ : rejected_;
    PREFOPT_CHECK(values.offsets() == responses.offsets(), shape_error, fn, ": ", column_name(c),
                  " does not have the layout of the ", is_chosen(c) ? "chosen" : "rejected",
                  " responses (one value per token)");
    std::vector<double> sums(static_cast<std::size_t>(size()));
    for (index_t i = 0; i < size(); ++i) {
      double s = 0.0;
      const auto seq = values[i];
      for (std::size_t t = 0; t < seq.size(); ++t) {
        check_logprob(fn, i, c, seq[t], static_cast<index_t>(t));
        s += seq[t];
      }
      check_token_sum(fn, i, c, s, seq.size());
      sums[static_cast<std::size_t>(i)] = s;
    }
    auto& col = columns_[static_cast<std::size_t>(c)];
    col.layout = logprob_layout::per_token;
    col.tokens = values;
    col.sequence = std::move(sums);
  }

  /// Response lengths (`[size()]`).
  [[nodiscard]] std::vector<index_t> chosen_lengths() const { return lengths(chosen_); }
  [[nodiscard]] std::vector<index_t> rejected_lengths() const { return lengths(rejected_); }

  /// Copies the records `indices` (each in [0, size()), repeats allowed) into a ragged batch with
  /// rebased offsets, their lengths, and the sequence log-probs of every present column.
  [[nodiscard]] preference_batch batch(std::span<const index_t> indices) const {
    preference_batch b;
    for (const logprob_column c : all_logprob_columns) {
      if (layout(c) != logprob_layout::none) {
        b.sequence_logps[static_cast<std::size_t>(c)].resize(static_cast<index_t>(indices.size()));
      }
    }
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const index_t i = indices[k];
      PREFOPT_CHECK(i >= 0 && i < size(), invalid_argument, "preference_dataset::batch: indices[",
                    k, "] = ", i, ", expected a record index in [0, ", size(), ")");
      b.indices.push_back(i);
      b.prompts.push_back(prompts_[i]);
      b.chosen.push_back(chosen_[i]);
      b.rejected.push_back(rejected_[i]);
      b.chosen_lengths.push_back(chosen_.length(i));
      b.rejected_lengths.push_back(rejected_.length(i));
      for (const logprob_column c : all_logprob_columns) {
        const auto& col = columns_[static_cast<std::size_t>(c)];
        if (col.layout != logprob_layout::none) {
          b.sequence_logps[static_cast<std::size_t>(c)](static_cast<index_t>(k)) =
              col.sequence[static_cast<std::size_t>(i)];
        }
      }
    }
    return b;
  }

  /// Batches of `batch_size` consecutive records (the last may be smaller) in the given order
  /// (e.g. a permutation from `rng::shuffle`); `order` empty means 0..size()-1.
  [[nodiscard]] std::vector<preference_batch> batches(index_t batch_size,
                                                      std::span<const index_t> order = {}) const {
    PREFOPT_CHECK(batch_size > 0, invalid_argument,
                  "preference_dataset::batches: batch_size = ", batch_size, ", expected > 0");
    std::vector<index_t> identity;
    if (order.empty()) {
      identity.resize(static_cast<std::size_t>(size()));
      for (index_t i = 0; i < size(); ++i) identity[static_cast<std::size_t>(i)] = i;
      order = identity;
    }
    std::vector<preference_batch> out;
    for (std::size_t start = 0; start < order.size();
         start += static_cast<std::size_t>(batch_size)) {
      const std::size_t count =
          std::min(order.size() - start, static_cast<std::size_t>(batch_size));
      out.push_back(batch(order.subspan(start, count)));
    }
    return out;
  }

  /// Fingerprint of the token contents: FNV-1a 64 (data/checksum.hpp) over a versioned tag, the
  /// record count, and for each record the length and ids of prompt, chosen and rejected
  /// (little-endian). Log-probs are not part of it. Changing, adding, removing or reordering any
  /// record changes it (up to 64-bit hash collisions).
  [[nodiscard]] std::uint64_t fingerprint() const {
    fnv1a64 h;
    h.update(std::string_view("prefopt-preference-dataset-v1"));
    h.update_u64(static_cast<std::uint64_t>(size()));
    for (index_t i = 0; i < size(); ++i) {
      for (const auto* part : {&prompts_, &chosen_, &rejected_}) {
        const auto seq = (*part)[i];
        h.update_u64(seq.size());
        for (const token_id t : seq) h.update_i32(t);
      }
    }
    return h.value();
  }

  [[nodiscard]] static constexpr std::string_view layout_name(logprob_layout l) noexcept {
    switch (l) {
      case logprob_layout::none:
        return "none";
      case logprob_layout::per_sequence:
        return "per_sequence";
      case logprob_layout::per_token:
        return "per_token";
    }
    return "?";
  }

 private:
  struct column_data {
    logprob_layout layout = logprob_layout::none;
    std::vector<double> sequence;  // per-sequence values or per-token sums
    ragged_buffer<double> tokens;  // per-token values (per_token layout only)
  };

  static void check_ids(const char* fn, index_t record, const char* field,
                        std::span<const token_id> ids) {
    for (std::size_t t = 0; t < ids.size(); ++t) {
      PREFOPT_CHECK(ids[t] >= 0, invalid_argument, fn, ": record ", record, ": ", field, "[", t,
                    "] = ", ids[t], ", expected a token id >= 0");
    }
  }
  static void check_logprob(const char* fn, index_t record, logprob_column c, double v, index_t t) {
    if (std::isfinite(v) && v <= 0.0) return;
    if (t >= 0) {
      PREFOPT_THROW(invalid_argument, fn, ": record ", record, ": ", column_name(c), "[", t,
                    "] = ", v, ", expected a finite log-probability <= 0");
    }
    PREFOPT_THROW(invalid_argument, fn, ": record ", record, ": ", column_name(c), " = ", v,
                  ", expected a finite log-probability <= 0");
  }
  /// The sequence log-prob of per-token values (their sum) must be finite too: each of
  /// `[-1e308, -1e308]` is, their sum is -inf.
  static void check_token_sum(const char* fn, index_t record, logprob_column c, double sum,
                              std::size_t tokens) {
    PREFOPT_CHECK(std::isfinite(sum), invalid_argument, fn, ": record ", record, ": ",
                  column_name(c), ": the ", tokens, " per-token log-probs sum to ", sum,
                  ", expected a finite sequence log-probability (the sum overflows a double, whose "
                  "magnitude is at most 1.7976931348623157e308)");
  }
  static std::vector<index_t> lengths(const ragged_buffer<token_id>& r) {
    std::vector<index_t> out(static_cast<std::size_t>(r.size()));
    for (index_t i = 0; i < r.size(); ++i) out[static_cast<std::size_t>(i)] = r.length(i);
    return out;
  }

  ragged_buffer<token_id> prompts_;
  ragged_buffer<token_id> chosen_;
  ragged_buffer<token_id> rejected_;
  std::array<column_data, 4> columns_;
};

}  // namespace prefopt::data
