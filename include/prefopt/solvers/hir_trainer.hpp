#pragma once
/// \file
/// Hindsight instruction relabeling (HIR; The Wisdom of Hindsight Makes Language Models Better
/// Instruction Followers, Zhang et al., arXiv 2302.05206; ALGORITHMS.md §10) for any
/// `SequenceModel`, on a `sequence_problem<Reference, Relabeler>` whose feedback models
/// `InstructionRelabeler` (e.g. `modular_sum_instruction_task`; prompts start with their
/// instruction token).
///
/// One `step` is one round of the two-stage loop: (1) online sampling, `batch_size` prompts drawn
/// from the pool and one response `y_i ~ pi_theta(. | c_i, x_i)` each (the library's generation,
/// `problem.generation`), success `r_i` from `relabeler.feedback()`; (2) `updates_per_round`
/// optimizer steps on the round's data with
///
///     L = L_sup + w_con L_con + w_ent L_ent,
///     L_sup = label-smoothed token cross-entropy of y_i given the positive prompt (eps_ls),
///     L_con = 2-way smoothed contrast of ell+ and ell-, the (mean-token or summed) log-likelihoods
///             of y_i under the positive and the negative prompt (eps_ls; `contrast = two_way`,
///             the reference code), or the k-way smoothed softmax of y_i's log-likelihoods under
///             every instruction's prompt, the positive one as the target (`k_way`, the paper),
///     L_ent = -mean_t H_t over the positive prompt's response positions (an entropy bonus),
///
/// (`losses::label_smoothed_cross_entropy`, `losses::contrastive_instruction_loss_2way` or
/// `losses::contrastive_instruction_loss`, `losses::entropy_bonus`). The modes differ only in the
/// data they train on:
/// - `hindsight` (HIR): positive prompt = the relabeled one (`relabel_prompts`: the instruction
///   `y_i` satisfies), negative = `negative_instruction(y_i)` (or drawn: `hir_negatives`);
/// - `no_relabeling` (baseline): positive = the prompt as sampled, negative = the next
///   instruction `(c_i + 1) mod num_instructions()` (or drawn);
/// - `successes_only` (baseline; filtered supervised learning): `L_sup` on the successful samples
///   only (no contrast, no entropy term); a round without success makes no update.
///
/// The loss goes through the model's teacher-forced logits (`[T, V]` for the round's `T`
/// response tokens), not the fused linear-head path. A logit of -inf is a token the model forbids
/// at that position (constrained decoding; `tabular_sequence_model`'s one-token view of a table):
/// label smoothing spreads `eps_ls` over the allowed tokens only and the entropy is over them, so a
/// position with one allowed token (a forced eos) adds nothing but its share of the mean.
/// Deterministic for `config.seed`. Not supported: sub-output relabeling (`data::sample_sub_span`),
/// a replay buffer across rounds.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/losses/hir.hpp"
#include "prefopt/sequence/derived.hpp"
#include "prefopt/sequence/generation.hpp"
#include "prefopt/solvers/common/optimizers.hpp"
#include "prefopt/solvers/common/prompt_batch.hpp"
#include "prefopt/solvers/common/sequence_problem.hpp"

namespace prefopt {

/// HIR's training data (file comment); shared with `tabular_hir`.
enum class hir_mode { hindsight, no_relabeling, successes_only };
/// The instruction contrast: the reference code's 2-way or the paper's k-way form.
enum class hir_contrast { two_way, k_way };

[[nodiscard]] constexpr std::string_view to_string(hir_mode m) noexcept {
  return m == hir_mode::hindsight       ? "hindsight"
         : m == hir_mode::no_relabeling ? "no_relabeling"
                                        : "successes_only";
}

/// What HIR needs from its feedback (declared here, not in `core/concepts.hpp`): a success
/// `RewardModel` over `sequence_batch` (`feedback()`), hindsight relabeling of a batch's prompts
/// (`relabel_prompts(batch, offsets, tokens)`: each prompt with its instruction replaced by one
/// its response satisfies), a negative instruction for a response (`negative_instruction(y)`),
/// and the number of instructions (`modulus()`); instructions are the prompts' first token.
template <class R>
concept InstructionRelabeler = requires(const R& r, const sequence_batch& batch,
                                        std::vector<index_t>& offsets,
                                        std::vector<token_id>& tokens,
                                        std::span<const token_id> y) {
  { r.feedback() } -> RewardModel;
  { r.relabel_prompts(batch, offsets, tokens) } -> std::same_as<void>;
  { r.negative_instruction(y) } -> std::convertible_to<index_t>;
  { r.modulus() } -> std::convertible_to<index_t>;
};

/// Where the 2-way contrast's negative instruction comes from.
enum class hir_negatives {
  /// `relabeler.negative_instruction(y)` in `hindsight` (an instruction `y` never satisfies),
  /// the next instruction `(c + 1) mod m` in `no_relabeling`: deterministic.
  relabeler,
  /// The tabular HIR's rule (`tabular_hir`): in `hindsight` the sampled instruction when the
  /// response failed it, and a uniformly drawn instruction other than the relabeled one when it
  /// succeeded; in `no_relabeling` a uniformly drawn instruction other than the sampled one.
  sampled,
};

/// Hyperparameters of `hir_trainer` (defaults: the reference code's `eps_ls = 0.2`, `w_con = 1`,
/// `w_ent = 0.001`, mean-token likelihoods in the contrast).
struct hir_trainer_config {
  hir_mode mode = hir_mode::hindsight;
  index_t batch_size = 32;        ///< prompts sampled per round (>= 1)
  index_t updates_per_round = 4;  ///< optimizer steps on a round's data (>= 1)
  double label_smoothing = losses::hir_defaults::eps_ls;  ///< eps_ls, in [0, 0.5]
  double contrast_weight = losses::hir_defaults::w_con;   ///< w_con >= 0
  double entropy_weight = losses::hir_defaults::w_ent;    ///< w_ent >= 0
  losses::likelihood_reduction contrast_likelihood = losses::likelihood_reduction::mean_token;
  /// `two_way`: the reference code's contrast of the positive and one negative instruction;
  /// `k_way`: the paper's softmax over all `modulus()` instructions (K teacher-forced passes).
  hir_contrast contrast = hir_contrast::two_way;
  /// The 2-way contrast's negative instruction (file comment).
  hir_negatives negatives = hir_negatives::relabeler;
  /// How the contrast's other prompts are scored (the fused linear head or materialised logits,
  /// chunking); the supervised term always reads the positive prompt's logits.
  sequence_options scoring{};
  optimizer_config optimizer{};
  std::uint64_t seed = 0;

  void validate(const char* function) const {
    PREFOPT_CHECK(batch_size >= 1, invalid_argument, function, ": config.batch_size = ", batch_size,
                  ", expected >= 1");
    PREFOPT_CHECK(updates_per_round >= 1, invalid_argument, function,
                  ": config.updates_per_round = ", updates_per_round, ", expected >= 1");
    PREFOPT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 0.5, invalid_argument, function,
                  ": config.label_smoothing = ", label_smoothing, ", expected a value in [0, 0.5]");
    PREFOPT_CHECK(std::isfinite(contrast_weight) && contrast_weight >= 0.0, invalid_argument,
                  function, ": config.contrast_weight = ", contrast_weight, ", expected >= 0");
    PREFOPT_CHECK(std::isfinite(entropy_weight) && entropy_weight >= 0.0, invalid_argument,
                  function, ": config.entropy_weight = ", entropy_weight, ", expected >= 0");
    PREFOPT_CHECK(scoring.max_positions >= 1, invalid_argument, function,
                  ": config.scoring.max_positions = ", scoring.max_positions, ", expected >= 1");
    PREFOPT_CHECK(std::isfinite(scoring.temperature) && scoring.temperature == 1.0,
                  invalid_argument, function,
                  ": config.scoring.temperature = ", scoring.temperature,
                  ", expected 1 (the supervised term reads untempered logits)");
    optimizer.validate(function);
  }
};

/// One round's statistics.
struct hir_step_stats {
  double loss = 0.0;              ///< total loss at the round's last update
  double supervised_loss = 0.0;   ///< L_sup at the last update
  double contrast_loss = 0.0;     ///< L_con at the last update (0 when unused)
  double entropy_term = 0.0;      ///< w_ent L_ent at the last update (<= 0)
  double success_rate = 0.0;      ///< fraction of the round's samples that succeeded
  double trained_examples = 0.0;  ///< examples the round trained on
};

/// Parts of the HIR loss (file comment).
struct hir_loss_parts {
  double total = 0.0, supervised = 0.0, contrast = 0.0, entropy = 0.0;
};

namespace detail {
/// Storage and view of several batches of the same responses, one after another.
struct stacked_batches {
  std::vector<index_t> prompt_offsets{0}, response_offsets{0};
  std::vector<token_id> prompts, responses;
  void add(std::span<const token_id> prompt, std::span<const token_id> response) {
    prompts.insert(prompts.end(), prompt.begin(), prompt.end());
    responses.insert(responses.end(), response.begin(), response.end());
    prompt_offsets.push_back(static_cast<index_t>(prompts.size()));
    response_offsets.push_back(static_cast<index_t>(responses.size()));
  }
  [[nodiscard]] sequence_batch view() const {
    return {{prompt_offsets, prompts}, {response_offsets, responses}};
  }
};

/// The HIR loss with the contrast over `k` prompts per response. `scored` holds the alternatives
/// scored through the model, each a copy of `positive`'s responses under other prompts, one after
/// another: the 2-way form's negative (`k = 2`; its positive is `positive` itself, scored from
/// its logits), or all `k` alternatives of the k-way softmax, `positive_column[i]` the one that
/// is response i's positive prompt.
template <SequenceModel M>
hir_loss_parts hir_loss(const M& model, const sequence_batch& positive,
                        const sequence_batch& scored, index_t k,
                        std::span<const index_t> positive_column, bool k_way,
                        const hir_trainer_config& config,
                        Eigen::Ref<vector_t<typename M::scalar_type>> gradient) {
  using T = typename M::scalar_type;
  constexpr const char* fn = "hir_loss_gradient";
  const index_t n = positive.size();
  const index_t tokens = positive.responses.total_length();
  PREFOPT_CHECK(n >= 1 && tokens >= 1, shape_error, fn, ": positive has ", n, " responses and ",
                tokens, " tokens, expected at least one of each");
  const index_t v = model.vocab_size();
  row_matrix_t<T> z(tokens, v);
  model.logits(positive, z);
  const index_t base = positive.responses.offsets.front();
  const std::span<const token_id> targets = positive.responses.values.subspan(
      static_cast<std::size_t>(base), static_cast<std::size_t>(tokens));
  // One pass over each row of the `[T, V]` logits, in double: its log-sum-exp, the target's
  // log-prob, the entropy and the label-smoothed cross-entropy (`losses::
  // label_smoothed_cross_entropy` and `losses::entropy_bonus` define them; the gradient pass below
  // writes their sum, and the positive contrast's, straight into the logits' gradient). Entries
  // at -inf are tokens the model forbids there: outside the smoothing and the entropy.
  constexpr double minus_inf = -std::numeric_limits<double>::infinity();
  const double eps = config.label_smoothing;
  const double inv_n = 1.0 / static_cast<double>(tokens);
  vector_d lse(tokens), lp_positive(tokens), entropy(tokens), support(tokens);
  std::vector<std::uint8_t> masked(static_cast<std::size_t>(tokens), 0);
  Eigen::ArrayXd row(v), e(v);
  double supervised = 0.0, entropy_sum = 0.0;
  for (index_t t = 0; t < tokens; ++t) {
    row = z.row(t).transpose().template cast<double>().array();
    const bool some_masked = !row.allFinite();
    index_t allowed = v;
    if (some_masked) {
      allowed = 0;
      for (index_t u = 0; u < v; ++u) {
        if (row(u) == minus_inf) continue;
        if (!std::isfinite(row(u))) {
          PREFOPT_THROW(convergence_error, fn, ": model.logits wrote ", row(u),
                        " at response position ", t, ", vocabulary entry ", u,
                        ", expected finite logits or -inf (a forbidden token)");
        }
        ++allowed;
      }
      PREFOPT_CHECK(allowed > 0, invalid_argument, fn,
                    ": model.logits wrote only -inf at response position ", t,
                    ", expected at least one allowed token");
    }
    masked[static_cast<std::size_t>(t)] = some_masked ? 1 : 0;
    support(t) = static_cast<double>(allowed);
    const double top = row.maxCoeff();
    e = (row - top).exp();
    if (some_masked) {  // Eigen's vectorised exp(-inf) is a denormal, not 0
      for (index_t u = 0; u < v; ++u) {
        if (row(u) == minus_inf) e(u) = 0.0;
      }
    }
    const double sum = e.sum();
    lse(t) = top + std::log(sum);
    const auto y = static_cast<index_t>(targets[static_cast<std::size_t>(t)]);
    PREFOPT_CHECK(y >= 0 && y < v, invalid_argument, fn, ": positive.responses token ", t, " = ", y,
                  ", expected a token id in [0, ", v, ")");
    PREFOPT_CHECK(row(y) != minus_inf, invalid_argument, fn, ": positive.responses token ", t,
                  " = ", y, " has logit -inf (the model forbids it there)");
    lp_positive(t) = row(y) - lse(t);
    // Sums over the allowed tokens (the forbidden ones have p = 0).
    double pz = 0.0, z_sum = 0.0;
    if (some_masked) {
      for (index_t u = 0; u < v; ++u) {
        if (row(u) == minus_inf) continue;
        pz += e(u) * row(u);
        z_sum += row(u);
      }
    } else {
      pz = (e * row).sum();
      z_sum = row.sum();
    }
    entropy(t) = lse(t) - pz / sum;  // -sum_v p_v log p_v
    supervised += (1.0 - eps) * (-lp_positive(t)) + eps * (lse(t) - z_sum / support(t));
    entropy_sum += entropy(t);
  }
  hir_loss_parts parts;
  parts.supervised = supervised * inv_n;
  if (config.entropy_weight > 0.0) parts.entropy = -config.entropy_weight * entropy_sum * inv_n;
  // Per-token weight of the positive prompt's log-prob from the 2-way contrast (0 without one).
  vector_d w_positive = vector_d::Zero(tokens);
  const bool grad = gradient.size() > 0;
  if (config.contrast_weight > 0.0) {
    // The 2-way form's positive alternative is `positive` itself: its token log-probs come from
    // the logits above, and its contrast gradient joins dz (one backward through the model).
    const index_t first_scored = k_way ? 0 : 1;
    const index_t scored_count = k - first_scored;
    PREFOPT_CHECK(scored.size() == scored_count * n &&
                      scored.responses.total_length() == scored_count * tokens,
                  shape_error, fn, ": the contrast's batches hold ", scored.size(),
                  " responses and ", scored.responses.total_length(), " tokens, expected ",
                  scored_count, " copies of positive's ", n, " and ", tokens);
    // Response i's score under alternative a: column a of `ell` (mean-token or summed).
    matrix_d ell = matrix_d::Zero(n, k);
    vector_d len(n);
    for (index_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      const index_t length = positive.responses.offsets[u + 1] - positive.responses.offsets[u];
      len(i) = config.contrast_likelihood == losses::likelihood_reduction::mean_token
                   ? static_cast<double>(std::max<index_t>(length, 1))
                   : 1.0;
    }
    // One log-prob pass and (below) one gradient call for every alternative scored.
    vector_d lp_scored(scored_count * tokens);
    token_log_probs(model, scored, lp_scored, config.scoring);
    for (index_t a = 0; a < k; ++a) {
      const auto lp = a < first_scored ? lp_positive.segment(0, tokens)
                                       : lp_scored.segment((a - first_scored) * tokens, tokens);
      for (index_t i = 0; i < n; ++i) {
        const auto u = static_cast<std::size_t>(i);
        for (index_t t = positive.responses.offsets[u] - base;
             t < positive.responses.offsets[u + 1] - base; ++t) {
          ell(i, a) += lp(t);
        }
        ell(i, a) /= len(i);
      }
    }
    matrix_d g(n, k);
    if (k_way) {
      row_matrix_d g_rows(n, k);
      parts.contrast = losses::contrastive_instruction_loss<double>(
          row_matrix_d(ell), positive_column, config.label_smoothing, g_rows);
      g = g_rows;
    } else {
      vector_d gp(n), gn(n);
      parts.contrast = losses::contrastive_instruction_loss_2way<double>(
          ell.col(0), ell.col(1), config.label_smoothing, gp, gn);
      g.col(0) = gp;
      g.col(1) = gn;
    }
    if (grad) {
      vector_d w_scored(scored_count * tokens);
      for (index_t a = 0; a < k; ++a) {
        auto w = a < first_scored ? w_positive.segment(0, tokens)
                                  : w_scored.segment((a - first_scored) * tokens, tokens);
        for (index_t i = 0; i < n; ++i) {
          const auto u = static_cast<std::size_t>(i);
          for (index_t t = positive.responses.offsets[u] - base;
               t < positive.responses.offsets[u + 1] - base; ++t) {
            w(t) = config.contrast_weight * g(i, a) / len(i);
          }
        }
      }
      // The 2-way form's positive joins the logits' gradient below (w_positive).
      token_weights tw;
      tw.log_probs = cspan_d(w_scored);
      accumulate_token_gradient(model, scored, tw, gradient, config.scoring);
    }
  }
  if (grad) {
    // dz_tv = p_tv (1/N + w_ent (log p_tv + H_t) / N - w_t) - eps / (S_t N)
    //         + [v = y_t] (w_t - (1 - eps) / N)   (0 at forbidden tokens; S_t allowed ones),
    // the cross-entropy's, the entropy bonus's and the positive contrast's (w_t) gradients.
    const double w_ent = config.entropy_weight > 0.0 ? config.entropy_weight : 0.0;
    row_matrix_t<T> dz(tokens, v);
    for (index_t t = 0; t < tokens; ++t) {
      const double smooth = eps * inv_n / support(t);
      row = z.row(t).transpose().template cast<double>().array() - lse(t);  // log p
      if (masked[static_cast<std::size_t>(t)] != 0) {
        for (index_t u = 0; u < v; ++u) {
          const double log_p = row(u);
          row(u) = log_p == minus_inf
                       ? 0.0
                       : std::exp(log_p) *
                                 (inv_n + w_ent * inv_n * (log_p + entropy(t)) - w_positive(t)) -
                             smooth;
        }
      } else {
        e = row.exp();
        row = e * (inv_n + w_ent * inv_n * (row + entropy(t)) - w_positive(t)) - smooth;
      }
      const auto y = static_cast<index_t>(targets[static_cast<std::size_t>(t)]);
      row(y) += w_positive(t) - (1.0 - eps) * inv_n;
      dz.row(t) = row.transpose().template cast<T>();
    }
    model.accumulate_logits_gradient(positive, dz, gradient);
  }
  parts.total = parts.supervised + config.contrast_weight * parts.contrast + parts.entropy;
  return parts;
}
}  // namespace detail

/// The HIR loss on one round's data and its gradient (`+=` into `gradient`, skipped when empty)
/// with the 2-way contrast: `positive` and `negative` hold the same responses under the positive
/// and the negative prompts (`negative` is read only when `contrast_weight > 0`); `L_sup` and the
/// entropy term use `positive`. Settings from `config` (mode ignored; `contrast` must be
/// `two_way`: the k-way loss is the overload below).
template <SequenceModel M>
hir_loss_parts hir_loss_gradient(const M& model, const sequence_batch& positive,
                                 const sequence_batch& negative, const hir_trainer_config& config,
                                 Eigen::Ref<vector_t<typename M::scalar_type>> gradient) {
  PREFOPT_CHECK(config.contrast == hir_contrast::two_way, invalid_argument,
                "hir_loss_gradient: config.contrast = k_way, expected two_way with one negative "
                "batch (the k-way contrast takes the alternatives and positive_column overload)");
  return detail::hir_loss(model, positive, negative, 2, {}, /*k_way=*/false, config, gradient);
}

/// The HIR loss with the k-way contrast (the paper's `L_con`, label-smoothed softmax over K
/// instructions): `alternatives[a]` holds the responses of `positive` under instruction `a`'s
/// prompt (K >= 2 batches), `positive_column[i]` the alternative that is response i's positive
/// prompt. `L_sup` and the entropy term use `positive`. `config.contrast` is not read.
template <SequenceModel M>
hir_loss_parts hir_loss_gradient(const M& model, const sequence_batch& positive,
                                 std::span<const sequence_batch> alternatives,
                                 std::span<const index_t> positive_column,
                                 const hir_trainer_config& config,
                                 Eigen::Ref<vector_t<typename M::scalar_type>> gradient) {
  PREFOPT_CHECK(config.contrast_weight == 0.0 || alternatives.size() >= 2, shape_error,
                "hir_loss_gradient: alternatives has ", alternatives.size(),
                " batches, expected K >= 2 instructions");
  PREFOPT_CHECK(positive_column.size() == static_cast<std::size_t>(positive.size()), shape_error,
                "hir_loss_gradient: positive_column has ", positive_column.size(),
                " entries, expected one per response (", positive.size(), ")");
  detail::stacked_batches stacked;
  for (std::size_t a = 0; a < alternatives.size(); ++a) {
    const sequence_batch& alt = alternatives[a];
    PREFOPT_CHECK(alt.size() == positive.size(), shape_error, "hir_loss_gradient: alternative ", a,
                  " has ", alt.size(), " responses, expected those of positive (", positive.size(),
                  ")");
    for (index_t i = 0; i < alt.size(); ++i)
      stacked.add(alt.prompts.sequence(i), alt.responses.sequence(i));
  }
  return detail::hir_loss(model, positive, stacked.view(),
                          static_cast<index_t>(alternatives.size()), positive_column,
                          /*k_way=*/true, config, gradient);
}

/// HIR trainer (file comment).
class hir_trainer {
 public:
  using config_type = hir_trainer_config;
  using step_stats = hir_step_stats;
  static constexpr const char* name = "hir_trainer";

  template <class Model>
  class state {
   public:
    state(const Model& reference, const optimizer_config& opt)
        : policy_(reference), optimizer_(opt, reference.num_parameters()) {}
    [[nodiscard]] const Model& policy() const noexcept { return policy_; }
    [[nodiscard]] index_t iteration() const noexcept { return iteration_; }

   private:
    friend class hir_trainer;
    Model policy_;
    optimizer optimizer_;
    index_t iteration_ = 0;
  };

  explicit hir_trainer(const config_type& config = {}) : config_(config) { config_.validate(name); }
  [[nodiscard]] const config_type& config() const noexcept { return config_; }

  template <SequenceModel Reference, InstructionRelabeler Relabeler>
  requires std::copy_constructible<Reference>
  [[nodiscard]] state<Reference> init(const sequence_problem<Reference, Relabeler>& problem) const {
    static_assert(check_sequence_model<Reference>());
    problem.validate("hir_trainer::init");
    return state<Reference>(*problem.reference, config_.optimizer);
  }

  template <SequenceModel Reference, InstructionRelabeler Relabeler>
  requires std::copy_constructible<Reference> step_stats
  step(const sequence_problem<Reference, Relabeler>& problem, state<Reference>& s)
  const {
    using T = typename Reference::scalar_type;
    problem.validate("hir_trainer::step");
    const Relabeler& relabeler = *problem.feedback;
    Reference& policy = s.policy_;
    generation_config gen = problem.generation;
    gen.samples_per_prompt = 1;
    const auto prompts = detail::draw_prompts(problem.prompts, config_.batch_size,
                                              detail::step_seed(config_.seed, s.iteration_, 0));
    const generation_result y =
        generate(policy, prompts.view(), gen, detail::step_seed(config_.seed, s.iteration_, 1));
    const index_t n = y.size();
    vector_d success(n);
    relabeler.feedback().reward(y.batch(), success);
    step_stats st;
    st.success_rate = success.mean();

    // The round's training data: positive and negative prompts for (a subset of) the responses.
    std::vector<index_t> po{0}, no{0}, ro{0};
    std::vector<token_id> pt, nt, rt;
    std::vector<index_t> hind_o;
    std::vector<token_id> hind_t;
    if (config_.mode == hir_mode::hindsight) relabeler.relabel_prompts(y.batch(), hind_o, hind_t);
    const index_t m = relabeler.modulus();
    rng negatives_gen(detail::step_seed(config_.seed, s.iteration_, 2), /*stream=*/3);
    for (index_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      if (config_.mode == hir_mode::successes_only && success(i) < 0.5) continue;
      const auto x = y.batch().prompts.sequence(i);
      const auto resp = y.batch().responses.sequence(i);
      if (config_.mode == hir_mode::hindsight) {
        pt.insert(pt.end(), hind_t.begin() + hind_o[u], hind_t.begin() + hind_o[u + 1]);
      } else {
        pt.insert(pt.end(), x.begin(), x.end());
      }
      po.push_back(static_cast<index_t>(pt.size()));
      const auto sampled = static_cast<index_t>(x[0]);
      token_id negative = 0;
      if (config_.negatives == hir_negatives::sampled) {
        // The sampled instruction when the response failed it; else another one at random.
        const index_t positive_instruction =
            config_.mode == hir_mode::hindsight
                ? static_cast<index_t>(hind_t[static_cast<std::size_t>(hind_o[u])])
                : sampled;
        const bool failed = config_.mode == hir_mode::hindsight && success(i) < 0.5;
        index_t other = negatives_gen.uniform_index(m - 1);
        if (other >= positive_instruction) ++other;
        negative = static_cast<token_id>(failed ? sampled : other);
      } else {
        negative = config_.mode == hir_mode::hindsight
                       ? static_cast<token_id>(relabeler.negative_instruction(resp))
                       : static_cast<token_id>((sampled + 1) % m);
      }
      nt.push_back(negative);
      nt.insert(nt.end(), x.begin() + 1, x.end());
      no.push_back(static_cast<index_t>(nt.size()));
      rt.insert(rt.end(), resp.begin(), resp.end());
      ro.push_back(static_cast<index_t>(rt.size()));
    }
    const index_t kept = static_cast<index_t>(ro.size()) - 1;
    st.trained_examples = static_cast<double>(kept);
    if (kept == 0 || rt.empty()) {
      ++s.iteration_;
      return st;
    }
    const sequence_batch positive{{po, pt}, {ro, rt}};
    const sequence_batch negative{{no, nt}, {ro, rt}};
    hir_trainer_config c = config_;
    if (config_.mode == hir_mode::successes_only) {
      c.contrast_weight = 0.0;
      c.entropy_weight = 0.0;
    }
    // k-way: every response under each instruction's prompt (the positive's first token replaced).
    const bool k_way = config_.contrast == hir_contrast::k_way && c.contrast_weight > 0.0;
    detail::stacked_batches alternatives;  // k-way: instruction a's copy of every kept response
    std::vector<index_t> positive_column;
    if (k_way) {
      for (index_t i = 0; i < kept; ++i) {
        const token_id instruction = pt[static_cast<std::size_t>(po[static_cast<std::size_t>(i)])];
        PREFOPT_CHECK(instruction >= 0 && instruction < m, invalid_argument,
                      "hir_trainer::step: the positive prompt of response ", i,
                      " starts with instruction ", instruction,
                      ", expected one in [0, modulus() = ", m, ")");
        positive_column.push_back(instruction);
      }
      std::vector<token_id> prompt;
      for (index_t a = 0; a < m; ++a) {
        for (index_t i = 0; i < kept; ++i) {
          const auto x = positive.prompts.sequence(i);
          prompt.assign(x.begin(), x.end());
          prompt[0] = static_cast<token_id>(a);
          alternatives.add(prompt, positive.responses.sequence(i));
        }
      }
    }
    optimizer& opt = s.optimizer_;
    vector_t<T> grad(policy.num_parameters());
    for (index_t k = 0; k < config_.updates_per_round; ++k) {
      grad.setZero();
      const auto parts =
          k_way ? detail::hir_loss(policy, positive, alternatives.view(), m, positive_column,
                                   /*k_way=*/true, c, grad)
                : detail::hir_loss(policy, positive, negative, 2, {}, /*k_way=*/false, c, grad);
      st.loss = parts.total;
      st.supervised_loss = parts.supervised;
      st.contrast_loss = parts.contrast;
      st.entropy_term = parts.entropy;
      if (!std::isfinite(parts.total)) break;
      opt.step(policy.parameters(), grad);
    }
    ++s.iteration_;
    return st;
  }

 private:
  config_type config_;
};

}  // namespace prefopt
