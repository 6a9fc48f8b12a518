#pragma once
/// \file
/// `intransitive_class_task`: a sequence-level preference problem that no reward model explains,
/// with a known Nash equilibrium over response classes (for Nash-MD-PG and ONPO against RLHF;
/// Munos et al., arXiv 2312.00886; Zhang et al., arXiv 2502.16852; ALGORITHMS.md §4, §6, §8).
///
/// Vocabulary: `K` content tokens `0 .. K-1` and eos `= K`. A response's class is the sum of its
/// content tokens (up to the first eos) modulo 3, `c(y) in {0, 1, 2}`. With cyclic margins
/// `a, b, c > 0`, the antisymmetric class matrix
///
///     M = [[0, a, -b], [-a, 0, c], [b, -c, 0]]      (0 beats 1 by a, 1 beats 2 by c, 2 beats 0 by
///     b)
///
/// and a per-token quality `q[k]` (responses score `s(y) = sum_t q[y_t]`), the judge is
///
///     P(y > y' | x) = 1/2 + (1 - w) M[c(y), c(y')] / (2 m) + w tanh(s(y) - s(y')) / 2,
///
/// `m = max(a, b, c)`, `w in [0, 1)` the weight of quality. So `P(y > y') + P(y' > y) = 1`,
/// `P(y > y) = 1/2`, values in [0, 1]; for `w = 0` the preference is a rock-paper-scissors cycle
/// on classes (intransitive: no reward explains it). The Nash equilibrium of the class game
/// (`w = 0`) is `pi* = (c, b, a) / (a + b + c)` (the kernel of `M^T`), whatever the prompt.
/// Prompts are arbitrary token sequences (the judge ignores them). Not supported: prompt-dependent
/// classes.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

class intransitive_class_task {
 public:
  /// `quality` has one entry per content token (K >= 1); margins `a, b, c > 0`; `w in [0, 1)`.
  intransitive_class_task(vector_d quality, double a, double b, double c, double quality_weight)
      : quality_(std::move(quality)), a_(a), b_(b), c_(c), w_(quality_weight) {
    constexpr const char* fn = "intransitive_class_task";
    PREFOPT_CHECK(quality_.size() >= 1 && quality_.allFinite(), invalid_argument, fn,
                  ": quality has ", quality_.size(), " entries, expected at least one, all finite");
    for (const auto& [name, value] : {std::pair{"a", a}, std::pair{"b", b}, std::pair{"c", c}}) {
      PREFOPT_CHECK(std::isfinite(value) && value > 0.0, invalid_argument, fn, ": margin ", name,
                    " = ", value, ", expected a finite value > 0");
    }
    PREFOPT_CHECK(quality_weight >= 0.0 && quality_weight < 1.0, invalid_argument, fn,
                  ": quality_weight = ", quality_weight, ", expected a value in [0, 1)");
  }

  /// A judge over `pair_batch<sequence_batch>` (points into the task, which must outlive it).
  class judge_model {
   public:
    using batch_type = sequence_batch;
    explicit judge_model(const intransitive_class_task& task) : task_(&task) {}
    /// out[i] = P(first_i > second_i) (file comment).
    void preference(const pair_batch<sequence_batch>& pairs, Eigen::Ref<vector_d> out) const {
      constexpr const char* fn = "intransitive_class_task::judge_model::preference";
      pairs.first.responses.validate(fn, "pairs.first.responses");
      pairs.second.responses.validate(fn, "pairs.second.responses");
      PREFOPT_CHECK(pairs.first.size() == pairs.second.size() && out.size() == pairs.size(),
                    shape_error, fn, ": first has ", pairs.first.size(), " responses, second ",
                    pairs.second.size(), ", out ", out.size(), ", expected equal sizes");
      const matrix_d m = task_->class_matrix() / task_->max_margin();
      for (index_t i = 0; i < out.size(); ++i) {
        index_t ca = 0, cb = 0;
        double sa = 0.0, sb = 0.0;
        task_->classify(fn, "pairs.first", i, pairs.first.responses.sequence(i), ca, sa);
        task_->classify(fn, "pairs.second", i, pairs.second.responses.sequence(i), cb, sb);
        out(i) = 0.5 + 0.5 * (1.0 - task_->w_) * m(ca, cb) + 0.5 * task_->w_ * std::tanh(sa - sb);
      }
    }

   private:
    const intransitive_class_task* task_;
  };

  /// The transitive part of the judge as a `RewardModel` over `sequence_batch`:
  /// `r(x, y) = s(y)`, the summed quality of y's content tokens before the first eos (the prompt
  /// is ignored). Points into the task, which must outlive it.
  class quality_reward_model {
   public:
    using batch_type = sequence_batch;
    explicit quality_reward_model(const intransitive_class_task& task) : task_(&task) {}
    /// out[i] = s(responses[i]).
    void reward(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
      constexpr const char* fn = "intransitive_class_task::quality_reward_model::reward";
      batch.responses.validate(fn, "batch.responses");
      PREFOPT_CHECK(out.size() == batch.size(), shape_error, fn, ": out has ", out.size(),
                    " entries, expected ", batch.size(), " (one per response)");
      for (index_t i = 0; i < out.size(); ++i) {
        index_t cls = 0;
        task_->classify(fn, "batch", i, batch.responses.sequence(i), cls, out(i));
      }
    }

   private:
    const intransitive_class_task* task_;
  };

  [[nodiscard]] judge_model judge() const { return judge_model(*this); }
  [[nodiscard]] quality_reward_model quality_reward() const { return quality_reward_model(*this); }
  /// V = K + 1.
  [[nodiscard]] index_t vocab_size() const noexcept { return quality_.size() + 1; }
  [[nodiscard]] token_id eos() const noexcept { return static_cast<token_id>(quality_.size()); }

  /// M (3 x 3, antisymmetric).
  [[nodiscard]] matrix_d class_matrix() const {
    matrix_d m(3, 3);
    m << 0.0, a_, -b_, -a_, 0.0, c_, b_, -c_, 0.0;
    return m;
  }
  /// The class-level Nash equilibrium of the cyclic game, `(c, b, a) / (a + b + c)`.
  [[nodiscard]] vector_d class_equilibrium() const {
    vector_d p(3);
    p << c_, b_, a_;
    return p / (a_ + b_ + c_);
  }
  /// The duality gap of the class distribution `p` (3 entries, each >= 0, summing to 1 within
  /// 1e-9) in the class game as the judge plays it at `w = 0`: `max_c (M p)_c / max(a, b, c)`,
  /// which is `2 max_c P(c > p) - 1`, in [0, 1] and 0 exactly at `class_equilibrium()`.
  [[nodiscard]] double class_duality_gap(Eigen::Ref<const vector_d> p) const {
    constexpr const char* fn = "intransitive_class_task::class_duality_gap";
    PREFOPT_CHECK(p.size() == 3, shape_error, fn, ": p has ", p.size(),
                  " entries, expected 3 (one per class)");
    for (index_t k = 0; k < 3; ++k) {
      PREFOPT_CHECK(std::isfinite(p(k)) && p(k) >= 0.0, invalid_argument, fn, ": p[", k,
                    "] = ", p(k), ", expected a probability");
    }
    PREFOPT_CHECK(std::abs(p.sum() - 1.0) <= 1e-9, invalid_argument, fn, ": p sums to ", p.sum(),
                  ", expected 1");
    return (class_matrix() * p).maxCoeff() / max_margin();
  }
  /// The class of a response (sum of content tokens before the first eos, modulo 3).
  [[nodiscard]] index_t response_class(std::span<const token_id> y) const {
    index_t c = 0;
    double s = 0.0;
    classify("intransitive_class_task::response_class", "y", 0, y, c, s);
    return c;
  }

 private:
  [[nodiscard]] double max_margin() const { return std::max(a_, std::max(b_, c_)); }

  void classify(const char* fn, const char* argument, index_t i, std::span<const token_id> y,
                index_t& cls, double& score) const {
    index_t sum = 0;
    score = 0.0;
    for (std::size_t t = 0; t < y.size(); ++t) {
      PREFOPT_CHECK(y[t] >= 0 && y[t] < vocab_size(), invalid_argument, fn, ": ", argument,
                    ".responses[", i, "][", t, "] = ", y[t], ", expected a token id in [0, ",
                    vocab_size(), ")");
      if (y[t] == eos()) break;
      sum += y[t];
      score += quality_(y[t]);
    }
    cls = sum % 3;
  }

  vector_d quality_;
  double a_, b_, c_, w_;
};

static_assert(PreferenceModel<intransitive_class_task::judge_model>);
static_assert(RewardModel<intransitive_class_task::quality_reward_model>);

}  // namespace prefopt
