#pragma once
/// \file
/// ONPO and INPO for any `SequenceModel`: online self-play on pairs from the current policy,
/// labelled by a judge, each iteration a few gradient steps on a squared pair loss (the "IPO
/// trick": no estimate of `P(y > pi_t)` is needed). Papers: Improving LLM General Preference
/// Alignment via Optimistic Online Mirror Descent (ONPO, arXiv 2502.16852; ALGORITHMS.md §8.3);
/// Iterative Nash Policy Optimization (INPO, arXiv 2407.00617; §7.2).
///
/// One iteration `t`, for `batch_size` prompts drawn from the pool: two responses
/// `y_i1, y_i2 ~ pi_t(. | x_i)` (the library's generation with `problem.generation`), the judge's
/// `p_i = P(y_i1 > y_i2)`, and the label `w_i` = `p_i` (`pair_labels::expected`, the expectation
/// over the oracle's Bernoulli outcome; default) or a Bernoulli(`p_i`) draw
/// (`pair_labels::sampled`, the papers' oracle). With sequence log-probs `S` at the sampling
/// temperature and an anchor `A` (and the reference `R`), the pair loss is
///
///     h_i(theta) = (S_theta(y_i1) - S_theta(y_i2)) - c_ref (R(y_i1) - R(y_i2))
///                  - c_anchor (A(y_i1) - A(y_i2)),
///     L(theta)   = (1/N) sum_i [w_i (h_i - eta/2)^2 + (1 - w_i) (-h_i - eta/2)^2]
///
/// (`online_pair_loss`; computed through `losses::onpo_loss` / `losses::inpo_loss` on both
/// orientations of every pair), minimised by `inner_steps` optimizer steps (a fresh optimizer per
/// fit). Its tabular minimiser is the closed-form mirror step `log pi = c_ref log mu + c_anchor
/// log A + eta P q + const` (`losses/pair_regression.hpp`).
///
/// - **ONPO** (`onpo_trainer`, optimistic OMD, unregularised game): the state keeps the played
///   policy `pi_t` and the auxiliary `pi'_t` (both start at the reference). Pairs come from
///   `pi_t`; first `pi'_{t+1}` = the fit anchored at `pi'_t` (`c_ref = 0`, `c_anchor = 1`,
///   started at `pi'_t`), then `pi_{t+1}` = the fit on the same pairs anchored at `pi'_{t+1}`
///   (started at `pi'_{t+1}`): in closed form `pi'_{t+1} ∝ pi'_t exp(eta P pi_t)`, `pi_{t+1} ∝
///   pi'_{t+1} exp(eta P pi_t)` (the optimistic predictor `m_{t+1} = r_t`).
/// - **INPO** (`inpo_trainer`, KL-regularised OMD): anchor the previous iterate `pi_t`, with
///   `c_ref = eta tau`, `c_anchor = 1 - eta tau` (requires `eta tau <= 1`), started at `pi_t`:
///   `pi_{t+1} ∝ pi_t^(1 - eta tau) mu^(eta tau) exp(eta P pi_t)`. With `tau = 0` it is self-play
///   multiplicative weights (`pi_{t+1} ∝ pi_t exp(eta P pi_t)`, ONPO's non-optimistic baseline).
///
/// `eta` is a step size (published INPO / ONPO values are often its inverse:
/// `losses::eta_from_inverse`). The policy is a copy of the reference held in the state
/// (`state.policy()`); the reference and the judge are the problem's. Deterministic for
/// `config.seed`. Not supported: pairs chosen best-of-n / worst-of-n (the papers' practice with a
/// reward model), replay of past iterations' pairs.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/losses/nash_pg.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/prompt_batch.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"

namespace prefopt {

/// How a judged pair becomes a training label.
enum class pair_labels {
  expected,  ///< weight `p` on `(y1 > y2)` and `1 - p` on `(y2 > y1)` (lower variance)
  sampled,   ///< one Bernoulli(`p`) draw decides the winner (the papers' oracle)
};

/// The loss `L(theta)` of the file comment on `pairs` (responses `2i` and `2i + 1` form pair `i`,
/// `[2N]` sequences; prompts repeated per response), its value returned and its gradient added to
/// `gradient` when it is non-empty (`[model.num_parameters()]`). `first_wins`: `[N]` labels
/// `w_i` in [0, 1]; `anchor_logps`: `[2N]` sequence log-probs of the anchor; `reference_logps`:
/// `[2N]` (read only when `eta_tau > 0`); `eta > 0`; `c_ref = eta_tau`, `c_anchor = 1 - eta_tau`,
/// `eta_tau` in [0, 1] (0: ONPO's / self-play's loss). Log-probs at `options.temperature`.
template <SequenceModel M>
double online_pair_loss(const M& model, const sequence_batch& pairs,
                        Eigen::Ref<const vector_d> first_wins,
                        Eigen::Ref<const vector_d> anchor_logps,
                        Eigen::Ref<const vector_d> reference_logps, double eta, double eta_tau,
                        Eigen::Ref<vector_t<typename M::scalar_type>> gradient,
                        const sequence_options& options = {}) {
  constexpr const char* fn = "online_pair_loss";
  const index_t two_n = pairs.size();
  PREFOPT_CHECK(two_n >= 2 && two_n % 2 == 0, shape_error, fn, ": pairs has ", two_n,
                " responses, expected an even number >= 2 (pair i = responses 2i and 2i + 1)");
  const index_t n = two_n / 2;
  PREFOPT_CHECK(first_wins.size() == n, shape_error, fn, ": first_wins has ", first_wins.size(),
                " entries, expected ", n);
  PREFOPT_CHECK(anchor_logps.size() == two_n, shape_error, fn, ": anchor_logps has ",
                anchor_logps.size(), " entries, expected ", two_n);
  PREFOPT_CHECK(eta_tau >= 0.0 && eta_tau <= 1.0, invalid_argument, fn, ": eta_tau = ", eta_tau,
                ", expected a value in [0, 1]");
  if (eta_tau > 0.0) {
    PREFOPT_CHECK(reference_logps.size() == two_n, shape_error, fn, ": reference_logps has ",
                  reference_logps.size(), " entries, expected ", two_n);
  }
  for (index_t i = 0; i < n; ++i) {
    PREFOPT_CHECK(first_wins(i) >= 0.0 && first_wins(i) <= 1.0, invalid_argument, fn,
                  ": first_wins[", i, "] = ", first_wins(i), ", expected a value in [0, 1]");
  }
  vector_d s(two_n);
  sequence_log_probs(model, pairs, s, options);
  // Both orientations: rows [0, n) are (y1 > y2), rows [n, 2n) are (y2 > y1).
  vector_d sw(two_n), sl(two_n), aw(two_n), al(two_n), rw(two_n), rl(two_n);
  for (index_t i = 0; i < n; ++i) {
    sw(i) = sl(n + i) = s(2 * i);
    sl(i) = sw(n + i) = s(2 * i + 1);
    aw(i) = al(n + i) = anchor_logps(2 * i);
    al(i) = aw(n + i) = anchor_logps(2 * i + 1);
    if (eta_tau > 0.0) {
      rw(i) = rl(n + i) = reference_logps(2 * i);
      rl(i) = rw(n + i) = reference_logps(2 * i + 1);
    }
  }
  vector_d gw(two_n), gl(two_n);
  if (eta_tau > 0.0) {
    (void)losses::inpo_loss<double>(sw, sl, rw, rl, aw, al, eta, eta_tau / eta, gw, gl,
                                    losses::reduction::sum);
  } else {
    (void)losses::onpo_loss<double>(sw, sl, aw, al, eta, gw, gl, losses::reduction::sum);
  }
  // With reduction::sum, gw = 2 (h - eta/2), so each oriented loss is (gw / 2)^2.
  double loss = 0.0;
  vector_d weights = vector_d::Zero(two_n);
  const double inv_n = 1.0 / static_cast<double>(n);
  for (index_t i = 0; i < n; ++i) {
    const double w1 = first_wins(i), w2 = 1.0 - first_wins(i);
    loss += inv_n * (w1 * 0.25 * gw(i) * gw(i) + w2 * 0.25 * gw(n + i) * gw(n + i));
    weights(2 * i) += inv_n * (w1 * gw(i) + w2 * gl(n + i));
    weights(2 * i + 1) += inv_n * (w1 * gl(i) + w2 * gw(n + i));
  }
  if (gradient.size() > 0)
    accumulate_sequence_log_prob_gradient(model, pairs, weights, gradient, options);
  return loss;
}

/// Hyperparameters shared by `onpo_trainer` and `inpo_trainer`.
struct online_pair_config {
  double eta = 1.0;         ///< mirror step size (> 0); the regression target is `eta / 2`
  double tau = 0.0;         ///< KL weight (INPO only; >= 0, `eta tau <= 1`); 0 is self-play
  index_t batch_size = 16;  ///< prompts per iteration (>= 1), one pair each
  index_t inner_steps = 8;  ///< optimizer steps per iteration (>= 1)
  pair_labels labels = pair_labels::expected;
  optimizer_config optimizer{};
  std::uint64_t seed = 0;
  sequence_options scoring{};  ///< chunking (its temperature is replaced by the sampling one)

  void validate(const char* function) const {
    PREFOPT_CHECK(std::isfinite(eta) && eta > 0.0, invalid_argument, function,
                  ": config.eta = ", eta, ", expected a finite value > 0");
    PREFOPT_CHECK(std::isfinite(tau) && tau >= 0.0, invalid_argument, function,
                  ": config.tau = ", tau, ", expected a finite value >= 0");
    PREFOPT_CHECK(eta * tau <= 1.0, invalid_argument, function,
                  ": config.eta * config.tau = ", eta * tau, ", expected <= 1");
    PREFOPT_CHECK(batch_size >= 1, invalid_argument, function, ": config.batch_size = ", batch_size,
                  ", expected >= 1");
    PREFOPT_CHECK(inner_steps >= 1, invalid_argument, function,
                  ": config.inner_steps = ", inner_steps, ", expected >= 1");
    PREFOPT_CHECK(scoring.max_positions >= 1, invalid_argument, function,
                  ": config.scoring.max_positions = ", scoring.max_positions, ", expected >= 1");
    optimizer.validate(function);
  }
};

/// `onpo_trainer`'s configuration (`tau` must stay 0: ONPO's game is unregularised).
struct onpo_trainer_config : online_pair_config {
  void validate(const char* function) const {
    online_pair_config::validate(function);
    PREFOPT_CHECK(tau == 0.0, invalid_argument, function, ": config.tau = ", tau,
                  ", expected 0 (ONPO's game is unregularised; use inpo_trainer for tau > 0)");
  }
};

/// `inpo_trainer`'s configuration.
struct inpo_trainer_config : online_pair_config {};

/// One iteration's statistics.
struct online_pair_step_stats {
  double loss = 0.0;              ///< pair loss at the last inner step (of the played policy's fit)
  double initial_loss = 0.0;      ///< pair loss before the first inner step of that fit
  double auxiliary_loss = 0.0;    ///< ONPO: the auxiliary fit's last loss (0 for INPO)
  double mean_preference = 0.0;   ///< `(1/N) sum_i p_i`
  double mean_label = 0.0;        ///< `(1/N) sum_i w_i`
  double identical_pairs = 0.0;   ///< fraction of pairs with `y1 == y2` (no signal)
  double mean_length = 0.0;       ///< mean response length (tokens, eos included)
  double log_ratio_margin = 0.0;  ///< `(1/N) sum_i |h_i|` after the fit: how far it moved
};

namespace detail {

/// Pairs of one iteration: responses `2i`, `2i + 1` answer prompt `i`.
struct judged_pairs {
  generation_result pairs;
  vector_d preference;  ///< [N]
  vector_d label;       ///< [N]
};

template <class Reference, class Judge>
judged_pairs sample_judged_pairs(const char* fn, const sequence_problem<Reference, Judge>& problem,
                                 const Reference& policy, const online_pair_config& c, long t) {
  generation_config gen = problem.generation;
  gen.samples_per_prompt = 2;
  const auto prompts = draw_prompts(problem.prompts, c.batch_size, step_seed(c.seed, t, 0));
  judged_pairs out;
  out.pairs = generate(policy, prompts.view(), gen, step_seed(c.seed, t, 1));
  const index_t n = out.pairs.size() / 2;
  // Split the 2N responses into the judge's two sides.
  std::vector<index_t> po1{0}, po2{0}, ro1{0}, ro2{0};
  std::vector<token_id> pt1, pt2, rt1, rt2;
  const auto& g = out.pairs;
  for (index_t r = 0; r < 2 * n; ++r) {
    const auto u = static_cast<std::size_t>(r);
    auto& po = r % 2 == 0 ? po1 : po2;
    auto& pt = r % 2 == 0 ? pt1 : pt2;
    auto& ro = r % 2 == 0 ? ro1 : ro2;
    auto& rt = r % 2 == 0 ? rt1 : rt2;
    pt.insert(pt.end(), g.prompt_tokens.begin() + g.prompt_offsets[u],
              g.prompt_tokens.begin() + g.prompt_offsets[u + 1]);
    po.push_back(static_cast<index_t>(pt.size()));
    rt.insert(rt.end(), g.tokens.begin() + g.offsets[u], g.tokens.begin() + g.offsets[u + 1]);
    ro.push_back(static_cast<index_t>(rt.size()));
  }
  const sequence_batch first{{po1, pt1}, {ro1, rt1}};
  const sequence_batch second{{po2, pt2}, {ro2, rt2}};
  out.preference.resize(n);
  problem.feedback->preference(pair_batch<sequence_batch>{first, second}, out.preference);
  rng gen_label(step_seed(c.seed, t, 3), /*stream=*/2);
  out.label.resize(n);
  for (index_t i = 0; i < n; ++i) {
    const double p = out.preference(i);
    PREFOPT_CHECK(std::isfinite(p) && p >= 0.0 && p <= 1.0, invalid_argument, fn,
                  ": the judge gave P(y1 > y2) = ", p, " for pair ", i,
                  ", expected a probability in [0, 1]");
    out.label(i) = c.labels == pair_labels::expected ? p : (gen_label.uniform() < p ? 1.0 : 0.0);
  }
  return out;
}

/// Minimises `online_pair_loss` over `model`'s parameters (from where they are) with a fresh
/// optimizer; returns {first loss, last loss}.
template <class Model>
std::pair<double, double> fit_pairs(Model& model, const judged_pairs& d, const vector_d& anchor,
                                    const vector_d& reference, double eta, double eta_tau,
                                    const online_pair_config& c, const sequence_options& opt) {
  using T = typename Model::scalar_type;
  optimizer o(c.optimizer, model.num_parameters());
  vector_t<T> grad(model.num_parameters());
  double first = 0.0, last = 0.0;
  for (index_t k = 0; k < c.inner_steps; ++k) {
    grad.setZero();
    last = online_pair_loss(model, d.pairs.batch(), d.label, anchor, reference, eta, eta_tau, grad,
                            opt);
    if (k == 0) first = last;
    if (!std::isfinite(last)) break;
    o.step(model.parameters(), grad);
  }
  return {first, last};
}

template <class Model>
void fill_pair_stats(online_pair_step_stats& st, const Model& model, const judged_pairs& d,
                     const vector_d& anchor, const vector_d& reference, double eta_tau,
                     const sequence_options& opt) {
  const auto& g = d.pairs;
  const index_t n = g.size() / 2;
  vector_d s(2 * n);
  sequence_log_probs(model, g.batch(), s, opt);
  st.mean_preference = d.preference.mean();
  st.mean_label = d.label.mean();
  double same = 0.0, margin = 0.0;
  for (index_t i = 0; i < n; ++i) {
    const auto a = static_cast<std::size_t>(2 * i), b = a + 1;
    const bool equal =
        std::equal(g.tokens.begin() + g.offsets[a], g.tokens.begin() + g.offsets[a + 1],
                   g.tokens.begin() + g.offsets[b], g.tokens.begin() + g.offsets[b + 1]);
    same += equal ? 1.0 : 0.0;
    double h = (s(2 * i) - s(2 * i + 1)) - (1.0 - eta_tau) * (anchor(2 * i) - anchor(2 * i + 1));
    if (eta_tau > 0.0) h -= eta_tau * (reference(2 * i) - reference(2 * i + 1));
    margin += std::abs(h);
  }
  st.identical_pairs = same / static_cast<double>(n);
  st.log_ratio_margin = margin / static_cast<double>(n);
  st.mean_length = static_cast<double>(g.tokens.size()) / static_cast<double>(2 * n);
}

}  // namespace detail

/// ONPO trainer (file comment): optimistic online mirror descent with an auxiliary policy.
class onpo_trainer {
 public:
  using config_type = onpo_trainer_config;
  using step_stats = online_pair_step_stats;
  static constexpr const char* name = "onpo_trainer";

  template <class Model>
  class state {
   public:
    explicit state(const Model& reference) : policy_(reference), auxiliary_(reference) {}
    /// The played policy `pi_t`.
    [[nodiscard]] const Model& policy() const noexcept { return policy_; }
    /// The auxiliary policy `pi'_t`.
    [[nodiscard]] const Model& auxiliary() const noexcept { return auxiliary_; }
    [[nodiscard]] index_t iteration() const noexcept { return iteration_; }

   private:
    friend class onpo_trainer;
    Model policy_;
    Model auxiliary_;
    index_t iteration_ = 0;
  };

  explicit onpo_trainer(const config_type& config = {}) : config_(config) {
    config_.validate(name);
  }
  [[nodiscard]] const config_type& config() const noexcept { return config_; }

  template <SequenceModel Reference, PreferenceModel Judge>
  requires std::copy_constructible<Reference> &&
      std::same_as<typename Judge::batch_type, sequence_batch>
  [[nodiscard]] state<Reference> init(const sequence_problem<Reference, Judge>& problem) const {
    static_assert(check_sequence_model<Reference>());
    static_assert(check_preference_model<Judge>());
    problem.validate("onpo_trainer::init");
    return state<Reference>(*problem.reference);
  }

  template <SequenceModel Reference, PreferenceModel Judge>
  requires std::copy_constructible<Reference> &&
      std::same_as<typename Judge::batch_type, sequence_batch>
          step_stats step(const sequence_problem<Reference, Judge>& problem, state<Reference>& s)
  const {
    problem.validate("onpo_trainer::step");
    sequence_options opt = config_.scoring;
    opt.temperature = problem.generation.temperature;
    const auto d = detail::sample_judged_pairs("onpo_trainer::step", problem, s.policy_, config_,
                                               s.iteration_);
    const index_t two_n = d.pairs.size();
    const vector_d none;
    // pi'_{t+1}: anchored at pi'_t.
    vector_d anchor(two_n);
    sequence_log_probs(s.auxiliary_, d.pairs.batch(), anchor, opt);
    const auto [a0, a1] =
        detail::fit_pairs(s.auxiliary_, d, anchor, none, config_.eta, 0.0, config_, opt);
    (void)a0;
    // pi_{t+1}: anchored at pi'_{t+1}, started there, same pairs.
    sequence_log_probs(s.auxiliary_, d.pairs.batch(), anchor, opt);
    s.policy_.parameters() = s.auxiliary_.parameters();
    const auto [l0, l1] =
        detail::fit_pairs(s.policy_, d, anchor, none, config_.eta, 0.0, config_, opt);
    step_stats st;
    st.loss = l1;
    st.initial_loss = l0;
    st.auxiliary_loss = a1;
    detail::fill_pair_stats(st, s.policy_, d, anchor, none, 0.0, opt);
    ++s.iteration_;
    return st;
  }

 private:
  config_type config_;
};

/// INPO trainer (file comment): previous-iterate anchor, KL weight `tau` (0: self-play).
class inpo_trainer {
 public:
  using config_type = inpo_trainer_config;
  using step_stats = online_pair_step_stats;
  static constexpr const char* name = "inpo_trainer";

  template <class Model>
  class state {
   public:
    explicit state(const Model& reference) : policy_(reference) {}
    [[nodiscard]] const Model& policy() const noexcept { return policy_; }
    [[nodiscard]] index_t iteration() const noexcept { return iteration_; }

   private:
    friend class inpo_trainer;
    Model policy_;
    index_t iteration_ = 0;
  };

  explicit inpo_trainer(const config_type& config = {}) : config_(config) {
    config_.validate(name);
  }
  [[nodiscard]] const config_type& config() const noexcept { return config_; }

  template <SequenceModel Reference, PreferenceModel Judge>
  requires std::copy_constructible<Reference> &&
      std::same_as<typename Judge::batch_type, sequence_batch>
  [[nodiscard]] state<Reference> init(const sequence_problem<Reference, Judge>& problem) const {
    static_assert(check_sequence_model<Reference>());
    static_assert(check_preference_model<Judge>());
    problem.validate("inpo_trainer::init");
    return state<Reference>(*problem.reference);
  }

  template <SequenceModel Reference, PreferenceModel Judge>
  requires std::copy_constructible<Reference> &&
      std::same_as<typename Judge::batch_type, sequence_batch>
          step_stats step(const sequence_problem<Reference, Judge>& problem, state<Reference>& s)
  const {
    problem.validate("inpo_trainer::step");
    sequence_options opt = config_.scoring;
    opt.temperature = problem.generation.temperature;
    const auto d = detail::sample_judged_pairs("inpo_trainer::step", problem, s.policy_, config_,
                                               s.iteration_);
    const index_t two_n = d.pairs.size();
    const double eta_tau = config_.eta * config_.tau;
    vector_d anchor(two_n), reference;
    sequence_log_probs(s.policy_, d.pairs.batch(), anchor, opt);
    if (eta_tau > 0.0) {
      reference.resize(two_n);
      sequence_log_probs(*problem.reference, d.pairs.batch(), reference, opt);
    }
    const auto [l0, l1] =
        detail::fit_pairs(s.policy_, d, anchor, reference, config_.eta, eta_tau, config_, opt);
    step_stats st;
    st.loss = l1;
    st.initial_loss = l0;
    detail::fill_pair_stats(st, s.policy_, d, anchor, reference, eta_tau, opt);
    ++s.iteration_;
    return st;
  }

 private:
  config_type config_;
};

}  // namespace prefopt
