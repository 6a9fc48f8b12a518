#pragma once
// Models and helpers only the trainers' tests define: a bag-of-tokens reward model and a table
// critic (each with a hand-written gradient), the bigram language model of the sequence tests, and
// central finite differences.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "../sequence/bigram_model.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/sequence/generation.hpp"

namespace prefopt::test {

/// r(x, y) = sum_{t < first eos} W[x_0, y_t], W `[V, V]` row-major (topic x token).
template <class T>
class bag_reward_model {
 public:
  using batch_type = sequence_batch;
  using scalar_type = T;

  bag_reward_model(index_t vocab, token_id eos, std::uint64_t seed, double scale = 0.1)
      : v_(vocab), eos_(eos), theta_(vocab * vocab) {
    rng gen(seed, /*stream=*/11);
    for (index_t k = 0; k < theta_.size(); ++k) theta_(k) = static_cast<T>(scale * gen.normal());
  }
  [[nodiscard]] index_t num_parameters() const { return theta_.size(); }
  [[nodiscard]] Eigen::Ref<vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const vector_t<T>> parameters() const { return theta_; }

  void reward(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
    for (index_t i = 0; i < batch.size(); ++i) {
      double r = 0.0;
      for_each_token(batch, i, [&](index_t k) { r += static_cast<double>(theta_(k)); });
      out(i) = r;
    }
  }
  void accumulate_reward_gradient(const sequence_batch& batch, Eigen::Ref<const vector_d> weights,
                                  Eigen::Ref<vector_t<T>> gradient) const {
    for (index_t i = 0; i < batch.size(); ++i) {
      for_each_token(batch, i, [&](index_t k) { gradient(k) += static_cast<T>(weights(i)); });
    }
  }

 private:
  template <class F>
  void for_each_token(const sequence_batch& batch, index_t i, F&& f) const {
    const index_t topic = batch.prompts.sequence(i)[0];
    for (const token_id y : batch.responses.sequence(i)) {
      if (y == eos_) break;
      f(topic * v_ + y);
    }
  }

  index_t v_;
  token_id eos_;
  vector_t<T> theta_;
};

/// V(x, y_<t) = a[c] + b[min(t, P - 1)], c the previous token (the last prompt token at t = 0, or
/// V after an empty prompt); parameters a `[V + 1]` then b `[P]`.
template <class T>
class table_critic {
 public:
  using scalar_type = T;

  table_critic(index_t vocab, index_t positions, std::uint64_t seed, double scale = 0.1)
      : v_(vocab), p_(positions), theta_(vocab + 1 + positions) {
    rng gen(seed, /*stream=*/13);
    for (index_t k = 0; k < theta_.size(); ++k) theta_(k) = static_cast<T>(scale * gen.normal());
  }
  [[nodiscard]] index_t num_parameters() const { return theta_.size(); }
  [[nodiscard]] Eigen::Ref<vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const vector_t<T>> parameters() const { return theta_; }

  void values(const sequence_batch& batch, Eigen::Ref<vector_d> out) const {
    for_each_row(batch, [&](index_t row, index_t c, index_t pos) {
      out(row) = static_cast<double>(theta_(c) + theta_(v_ + 1 + pos));
    });
  }
  void accumulate_value_gradient(const sequence_batch& batch, Eigen::Ref<const vector_d> dvalues,
                                 Eigen::Ref<vector_t<T>> gradient) const {
    for_each_row(batch, [&](index_t row, index_t c, index_t pos) {
      gradient(c) += static_cast<T>(dvalues(row));
      gradient(v_ + 1 + pos) += static_cast<T>(dvalues(row));
    });
  }

 private:
  template <class F>
  void for_each_row(const sequence_batch& batch, F&& f) const {
    const index_t base = batch.responses.offsets.empty() ? 0 : batch.responses.offsets.front();
    for (index_t i = 0; i < batch.size(); ++i) {
      const auto x = batch.prompts.sequence(i);
      const auto y = batch.responses.sequence(i);
      index_t c = x.empty() ? v_ : x.back();
      const index_t row0 = batch.responses.offsets[static_cast<std::size_t>(i)] - base;
      for (std::size_t t = 0; t < y.size(); ++t) {
        f(row0 + static_cast<index_t>(t), c, std::min(static_cast<index_t>(t), p_ - 1));
        c = y[t];
      }
    }
  }

  index_t v_;
  index_t p_;
  vector_t<T> theta_;
};

/// Central differences of `f` at `theta` (modified in place and restored), step `h`.
inline vector_d trainer_central_differences(vector_d& theta, const std::function<double()>& f,
                                            double h = 1e-6) {
  vector_d g(theta.size());
  for (index_t k = 0; k < theta.size(); ++k) {
    const double saved = theta(k);
    theta(k) = saved + h;
    const double up = f();
    theta(k) = saved - h;
    const double down = f();
    theta(k) = saved;
    g(k) = (up - down) / (2.0 * h);
  }
  return g;
}

/// `n` pairs: two responses per prompt from `model` (prompts cycled), labelled by a Bernoulli
/// draw from `judge`.
template <class M, class Judge>
data::preference_dataset judged_dataset(const M& model, const Judge& judge,
                                        ragged_view<const token_id> prompts, index_t n,
                                        const generation_config& generation, std::uint64_t seed) {
  data::preference_dataset out;
  rng gen(seed, /*stream=*/17);
  generation_config g = generation;
  g.samples_per_prompt = 2;
  std::vector<index_t> ids(static_cast<std::size_t>(n));
  data::ragged_buffer<token_id> x;
  for (index_t i = 0; i < n; ++i) {
    ids[static_cast<std::size_t>(i)] = i;
    x.push_back(prompts.sequence(i % prompts.num_sequences()));
  }
  const generation_result drawn = generate(model, x.view(), g, seed, ids);
  data::ragged_buffer<token_id> a, b;
  for (index_t i = 0; i < n; ++i) {
    a.push_back(drawn.responses().sequence(2 * i));
    b.push_back(drawn.responses().sequence(2 * i + 1));
  }
  vector_d p(n);
  judge.preference(pair_batch<sequence_batch>{{x.view(), a.view()}, {x.view(), b.view()}}, p);
  for (index_t i = 0; i < n; ++i) {
    const bool first = gen.bernoulli(p(i));
    out.add(x[i], first ? a[i] : b[i], first ? b[i] : a[i]);
  }
  return out;
}

}  // namespace prefopt::test
