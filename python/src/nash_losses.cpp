/// \file
/// `prefopt.losses`, the Nash-learning and HIR part: the Nash-MD-PG surrogate, the INPO and ONPO
/// squared losses (losses/nash_pg.hpp), the tabular pair-regression losses and the exact tabular
/// Nash gradient (losses/pair_regression.hpp), and the HIR losses (losses/hir.hpp). Sequence-level
/// losses read the caller's float32 / float64 arrays in place (loss_args.hpp); the tabular ones
/// take float64 tables, converted as in tabular.hpp. Each returns a dict with the loss, its
/// gradients and `metrics`.

#include <cstdint>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <span>
#include <string_view>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "loss_args.hpp"
#include "prefopt/losses/hir.hpp"
#include "prefopt/losses/nash_pg.hpp"
#include "prefopt/losses/pair_regression.hpp"
#include "tabular.hpp"

namespace prefopt::python {

namespace {

using namespace pybind11::literals;

template <class T>
using mvec = Eigen::Map<vector_t<T>>;

/// Ragged per-token values: `[T]` values of the caller's memory and `[N + 1]` offsets.
template <class T>
ragged_view<const T> ragged_in(const char* fn, const char* arg, py::handle values,
                               std::span<const index_t> offsets, py::array& keep) {
  const auto v = vec<T>(fn, arg, values, -1, keep);
  return {offsets, std::span<const T>(v.data(), static_cast<std::size_t>(v.size()))};
}

std::span<const index_t> offsets_in(const char* fn, py::handle obj, py::array& keep,
                                    std::vector<index_t>& buffer) {
  const auto off = indices_in(fn, "offsets", obj, -1, keep, buffer);
  if (off.empty()) PREFOPT_THROW(shape_error, fn, ": offsets is empty, expected N + 1 entries");
  return off;
}

py::dict nash_md_pg(py::handle policy_logps, py::handle reference_logps, py::handle offsets,
                    py::handle preferences, double tau, std::string_view credit,
                    std::string_view reduce) {
  const char* fn = "nash_md_pg_surrogate";
  const auto first = as_array(fn, "policy_logps", policy_logps);
  return dispatch_float(fn, "policy_logps", first, [&]<class T>() -> py::dict {
    py::array k[4];
    std::vector<index_t> buffer;
    const auto off = offsets_in(fn, offsets, k[0], buffer);
    const auto pl = ragged_in<T>(fn, "policy_logps", first, off, k[1]);
    const auto rl = ragged_in<T>(fn, "reference_logps", reference_logps, off, k[2]);
    const auto pr = vec<T>(fn, "preferences", preferences, -1, k[3]);
    losses::kl_credit c = losses::kl_credit::reward_to_go;
    if (credit == "same_position") {
      c = losses::kl_credit::same_position;
    } else if (credit != "reward_to_go") {
      PREFOPT_THROW(invalid_argument, fn, ": credit = '", credit,
                    "', expected 'reward_to_go' or 'same_position'");
    }
    const auto t = static_cast<index_t>(pl.values.size());
    py::array_t<T> grad(t);
    std::fill(grad.mutable_data(), grad.mutable_data() + t, T(0));
    const ragged_view<T> g{off, std::span<T>(grad.mutable_data(), static_cast<std::size_t>(t))};
    const auto s = losses::nash_md_pg_surrogate<T>(pl, rl, pr, tau, g, c, reduction_in(fn, reduce));
    py::dict metrics("loss"_a = static_cast<double>(s.loss),
                     "mean_advantage"_a = static_cast<double>(s.mean_advantage),
                     "mean_sequence_kl"_a = static_cast<double>(s.mean_sequence_kl));
    return py::dict("loss"_a = static_cast<double>(s.loss), "grad_policy_logps"_a = grad,
                    "metrics"_a = metrics);
  });
}

/// The dict of a squared pair loss (INPO, ONPO): loss, gradients, metrics.
template <class T>
py::dict pair_loss_dict(T loss, const py::array_t<T>& g_c, const py::array_t<T>& g_r) {
  return py::dict("loss"_a = static_cast<double>(loss), "grad_policy_chosen"_a = g_c,
                  "grad_policy_rejected"_a = g_r,
                  "metrics"_a = py::dict("loss"_a = static_cast<double>(loss)));
}

py::dict inpo(py::handle policy_chosen, py::handle policy_rejected, py::handle reference_chosen,
              py::handle reference_rejected, py::handle anchor_chosen, py::handle anchor_rejected,
              double eta, double tau, std::string_view reduce) {
  const char* fn = "inpo_loss";
  const auto first = as_array(fn, "policy_chosen", policy_chosen);
  return dispatch_float(fn, "policy_chosen", first, [&]<class T>() -> py::dict {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[6];
    const auto pc = vec<T>(fn, "policy_chosen", first, n, k[0]);
    const auto pr = vec<T>(fn, "policy_rejected", policy_rejected, n, k[1]);
    const auto rc = vec<T>(fn, "reference_chosen", reference_chosen, n, k[2]);
    const auto rr = vec<T>(fn, "reference_rejected", reference_rejected, n, k[3]);
    const auto ac = vec<T>(fn, "anchor_chosen", anchor_chosen, n, k[4]);
    const auto ar = vec<T>(fn, "anchor_rejected", anchor_rejected, n, k[5]);
    py::array_t<T> g_c(n), g_r(n);
    const T loss =
        losses::inpo_loss<T>(pc, pr, rc, rr, ac, ar, eta, tau, mvec<T>(g_c.mutable_data(), n),
                             mvec<T>(g_r.mutable_data(), n), reduction_in(fn, reduce));
    return pair_loss_dict(loss, g_c, g_r);
  });
}

py::dict onpo(py::handle policy_chosen, py::handle policy_rejected, py::handle anchor_chosen,
              py::handle anchor_rejected, double eta, std::string_view reduce) {
  const char* fn = "onpo_loss";
  const auto first = as_array(fn, "policy_chosen", policy_chosen);
  return dispatch_float(fn, "policy_chosen", first, [&]<class T>() -> py::dict {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[4];
    const auto pc = vec<T>(fn, "policy_chosen", first, n, k[0]);
    const auto pr = vec<T>(fn, "policy_rejected", policy_rejected, n, k[1]);
    const auto ac = vec<T>(fn, "anchor_chosen", anchor_chosen, n, k[2]);
    const auto ar = vec<T>(fn, "anchor_rejected", anchor_rejected, n, k[3]);
    py::array_t<T> g_c(n), g_r(n);
    const T loss = losses::onpo_loss<T>(pc, pr, ac, ar, eta, mvec<T>(g_c.mutable_data(), n),
                                        mvec<T>(g_r.mutable_data(), n), reduction_in(fn, reduce));
    return pair_loss_dict(loss, g_c, g_r);
  });
}

/// `labelled_pair_loss` / `regression_pair_loss` (same arguments) on converted float64 tables.
template <class F>
py::dict pair_regression(const char* fn, F loss, py::handle p, py::handle q, py::handle anchor,
                         py::handle z, double eta) {
  const row_matrix_d pm = table_in(fn, "p", p, -1, -1);
  const index_t n = pm.rows();
  const vector_d qv = vector_d_in(fn, "q", q, n);
  const vector_d av = vector_d_in(fn, "anchor", anchor, n);
  const vector_d zv = vector_d_in(fn, "z", z, n);
  vector_d grad(n);
  const double value = loss(matrix_d(pm), qv, av, eta, zv, grad);
  return py::dict("loss"_a = value, "grad"_a = to_numpy(grad),
                  "metrics"_a = py::dict("loss"_a = value));
}

/// `[N, V]` logits and a fresh `[N, V]` gradient of the same dtype, for the HIR token losses.
template <class T>
struct logits_and_grad {
  cmatrix<T> logits;
  py::array_t<T> grad;
  [[nodiscard]] Eigen::Map<row_matrix_t<T>> grad_map() {
    return {grad.mutable_data(), logits.rows(), logits.cols()};
  }
};

template <class T>
logits_and_grad<T> logits_in(const char* fn, const py::array& a) {
  auto z = matrix_in<T>(fn, "logits", a);
  py::array_t<T> grad({z.rows(), z.cols()});
  return {z, grad};
}

py::dict label_smoothed_ce(py::handle logits, py::handle targets, double eps_ls) {
  const char* fn = "label_smoothed_cross_entropy";
  const auto a = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", a, [&]<class T>() -> py::dict {
    auto in = logits_in<T>(fn, a);
    const auto t = targets_in(fn, targets, in.logits.rows(), in.logits.cols(), {});
    const T loss =
        losses::label_smoothed_cross_entropy<T>(in.logits, t.span, eps_ls, in.grad_map());
    return py::dict("loss"_a = static_cast<double>(loss), "grad"_a = in.grad,
                    "metrics"_a = py::dict("loss"_a = static_cast<double>(loss)));
  });
}

py::dict entropy_bonus(py::handle logits, double w_ent) {
  const char* fn = "entropy_bonus";
  const auto a = as_array(fn, "logits", logits);
  return dispatch_float(fn, "logits", a, [&]<class T>() -> py::dict {
    auto in = logits_in<T>(fn, a);
    const T value = losses::entropy_bonus<T>(in.logits, w_ent, in.grad_map());
    return py::dict("loss"_a = static_cast<double>(value), "grad"_a = in.grad,
                    "metrics"_a = py::dict("entropy_bonus"_a = static_cast<double>(value)));
  });
}

py::dict contrast_2way(py::handle ell_positive, py::handle ell_negative, double eps_ls) {
  const char* fn = "contrastive_instruction_loss_2way";
  const auto first = as_array(fn, "ell_positive", ell_positive);
  return dispatch_float(fn, "ell_positive", first, [&]<class T>() -> py::dict {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[2];
    const auto pos = vec<T>(fn, "ell_positive", first, n, k[0]);
    const auto neg = vec<T>(fn, "ell_negative", ell_negative, n, k[1]);
    py::array_t<T> g_p(n), g_n(n);
    const T loss = losses::contrastive_instruction_loss_2way<T>(
        pos, neg, eps_ls, mvec<T>(g_p.mutable_data(), n), mvec<T>(g_n.mutable_data(), n));
    return py::dict("loss"_a = static_cast<double>(loss), "grad_positive"_a = g_p,
                    "grad_negative"_a = g_n,
                    "metrics"_a = py::dict("loss"_a = static_cast<double>(loss)));
  });
}

py::dict contrast_kway(py::handle ell, py::handle positive, double eps_ls) {
  const char* fn = "contrastive_instruction_loss";
  const auto a = as_array(fn, "ell", ell);
  return dispatch_float(fn, "ell", a, [&]<class T>() -> py::dict {
    const auto e = matrix_in<T>(fn, "ell", a);
    py::array keep;
    std::vector<index_t> buffer;
    const auto pos = indices_in(fn, "positive", positive, e.rows(), keep, buffer);
    py::array_t<T> grad({e.rows(), e.cols()});
    const T loss = losses::contrastive_instruction_loss<T>(
        e, pos, eps_ls, Eigen::Map<row_matrix_t<T>>(grad.mutable_data(), e.rows(), e.cols()));
    return py::dict("loss"_a = static_cast<double>(loss), "grad"_a = grad,
                    "metrics"_a = py::dict("loss"_a = static_cast<double>(loss)));
  });
}

py::array sequence_likelihoods(py::handle token_logps, py::handle offsets,
                               std::string_view reduction) {
  const char* fn = "sequence_log_likelihoods";
  const auto first = as_array(fn, "token_logps", token_logps);
  return dispatch_float(fn, "token_logps", first, [&]<class T>() -> py::array {
    py::array k[2];
    std::vector<index_t> buffer;
    const auto off = offsets_in(fn, offsets, k[0], buffer);
    const auto v = ragged_in<T>(fn, "token_logps", first, off, k[1]);
    losses::likelihood_reduction how = losses::likelihood_reduction::mean_token;
    if (reduction == "sum") {
      how = losses::likelihood_reduction::sum;
    } else if (reduction != "mean_token") {
      PREFOPT_THROW(invalid_argument, fn, ": reduction = '", reduction,
                    "', expected 'mean_token' or 'sum'");
    }
    const index_t n = v.num_sequences();
    py::array_t<T> out(n);
    losses::sequence_log_likelihoods<T>(v, how, mvec<T>(out.mutable_data(), n));
    return out;
  });
}

}  // namespace

void bind_nash_losses(py::module_& m) {
  py::options doc_options;
  doc_options.disable_function_signatures();
  const auto none = py::none();
  m.def(
      "nash_md_pg_surrogate", &nash_md_pg, "policy_logps"_a, "reference_logps"_a, "offsets"_a,
      "preferences"_a, py::kw_only(), "tau"_a, "credit"_a = "reward_to_go", "reduction"_a = "mean",
      R"(nash_md_pg_surrogate(policy_logps, reference_logps, offsets, preferences, *, tau, credit='reward_to_go', reduction='mean') -> dict

Nash-MD-PG per-sequence policy-gradient surrogate (ALGORITHMS.md §6): for sequence i with
per-token log-ratios d_t = l_t - lr_t and preference p_i = P(y_i > y'_i),
loss_i = -sum_n sg(p_i - 1/2 - tau c_n) l_n with c_n = sum_{m >= n} d_m ('reward_to_go') or d_n
('same_position', TRL), reduced over sequences. policy_logps, reference_logps: [T] float32/float64
response-token log-probs of all sequences back to back; offsets: [N + 1] int64; preferences: [N] in
[0, 1]. Returns: dict with loss, grad_policy_logps [T] (d loss / d l_t), metrics (loss,
mean_advantage = mean p - 1/2, mean_sequence_kl = mean sum_t d_t). Raises prefopt.ShapeError,
prefopt.InvalidArgument (a preference outside [0, 1], non-finite log-probs, tau < 0).)");
  m.def(
      "inpo_loss", &inpo, "policy_chosen"_a, "policy_rejected"_a, "reference_chosen"_a,
      "reference_rejected"_a, "anchor_chosen"_a, "anchor_rejected"_a, py::kw_only(), "eta"_a,
      "tau"_a, "reduction"_a = "mean",
      R"(inpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, anchor_chosen, anchor_rejected, *, eta, tau, reduction='mean') -> dict

INPO squared loss (ALGORITHMS.md §7.2) on oracle-labelled pairs from pi_t:
h = log(pi(y_w)/pi(y_l)) - eta tau log(mu(y_w)/mu(y_l)) - (1 - eta tau) log(pi_t(y_w)/pi_t(y_l)),
loss_i = (h - eta/2)^2. Inputs: [N] float32/float64 sequence log-prob sums of the policy, the
reference and the previous iterate (anchor). eta > 0, tau >= 0, eta tau <= 1. Returns: dict with
loss, grad_policy_chosen, grad_policy_rejected [N], metrics (loss).)");
  m.def(
      "onpo_loss", &onpo, "policy_chosen"_a, "policy_rejected"_a, "anchor_chosen"_a,
      "anchor_rejected"_a, py::kw_only(), "eta"_a, "reduction"_a = "mean",
      R"(onpo_loss(policy_chosen, policy_rejected, anchor_chosen, anchor_rejected, *, eta, reduction='mean') -> dict

ONPO squared loss (ALGORITHMS.md §8.3): g = log(pi(y_w)/pi(y_l)) - log(pi'(y_w)/pi'(y_l)),
loss_i = (g - eta/2)^2, with the anchor pi' (the auxiliary policy). eta > 0. Returns: dict with
loss, grad_policy_chosen, grad_policy_rejected [N], metrics (loss).)");
  m.def(
      "labelled_pair_loss",
      [](py::handle p, py::handle q, py::handle anchor, py::handle z, double eta) {
        return pair_regression("labelled_pair_loss", &losses::labelled_pair_loss, p, q, anchor, z,
                               eta);
      },
      "p"_a, "q"_a, "anchor"_a, "z"_a, py::kw_only(), "eta"_a,
      R"(labelled_pair_loss(p, q, anchor, z, *, eta) -> dict

Tabular INPO / ONPO pair loss in its labelled form (losses/pair_regression.hpp):
L(z) = 2 sum_{y, y'} q(y) q(y') P(y > y') (h(y, y') - eta/2)^2, h = (z_y - z_y') - (a_y - a_y'),
for the sampling policy q [n], anchor logits a [n] and logits z [n] of the fitted policy; P [n, n].
Minimised exactly by z = a + eta P q + const. Inputs converted to float64. Returns: dict with loss,
grad ([n] dL/dz), metrics (loss).)");
  m.def(
      "regression_pair_loss",
      [](py::handle p, py::handle q, py::handle anchor, py::handle z, double eta) {
        return pair_regression("regression_pair_loss", &losses::regression_pair_loss, p, q, anchor,
                               z, eta);
      },
      "p"_a, "q"_a, "anchor"_a, "z"_a, py::kw_only(), "eta"_a,
      R"(regression_pair_loss(p, q, anchor, z, *, eta) -> dict

Regression form R(z) = E_{y, y' ~ q} (h(y, y') - eta (r_y - r_y'))^2 with r = P q (same minimiser
as labelled_pair_loss; L - R does not depend on z). Returns: dict with loss, grad [n], metrics.)");
  m.def(
      "tabular_nash_gradient",
      [](py::handle pi, py::handle p, py::handle pi_opponent, py::handle mu, double tau) {
        constexpr const char* fn = "tabular_nash_gradient";
        const vector_d pv = vector_d_in(fn, "pi", pi, -1);
        const index_t n = pv.size();
        const matrix_d pm = table_in(fn, "p", p, n, n);
        vector_d out(n);
        losses::tabular_nash_gradient(pv, pm, vector_d_in(fn, "pi_opponent", pi_opponent, n),
                                      vector_d_in(fn, "mu", mu, n), tau, out);
        return to_numpy(out);
      },
      "pi"_a, "p"_a, "pi_opponent"_a, "mu"_a, py::kw_only(), "tau"_a,
      R"(tabular_nash_gradient(pi, p, pi_opponent, mu, *, tau) -> array

Exact gradient of P_tau(pi_theta > pi') in the logits theta of pi = softmax(theta) (ALGORITHMS.md
§6): with h = P pi' - tau (log pi - log mu), grad = pi * (h - <pi, h>) ([n], components sum to 0).
pi, pi_opponent, mu: [n] distributions (pi, mu > 0); p: [n, n].)");
  m.def(
      "tabular_regularized_preference",
      [](py::handle pi, py::handle p, py::handle pi_opponent, py::handle mu, double tau) {
        constexpr const char* fn = "tabular_regularized_preference";
        const vector_d pv = vector_d_in(fn, "pi", pi, -1);
        const index_t n = pv.size();
        return losses::tabular_regularized_preference(
            pv, table_in(fn, "p", p, n, n), vector_d_in(fn, "pi_opponent", pi_opponent, n),
            vector_d_in(fn, "mu", mu, n), tau);
      },
      "pi"_a, "p"_a, "pi_opponent"_a, "mu"_a, py::kw_only(), "tau"_a,
      R"(tabular_regularized_preference(pi, p, pi_opponent, mu, *, tau) -> float

pi^T P pi' - tau KL(pi, mu): the part of P_tau(pi > pi') that depends on pi, one context.)");

  m.def("label_smoothed_cross_entropy", &label_smoothed_ce, "logits"_a, "targets"_a, py::kw_only(),
        "eps_ls"_a = losses::hir_defaults::eps_ls,
        R"(label_smoothed_cross_entropy(logits, targets, *, eps_ls=0.2) -> dict

HIR's supervised term (HF LabelSmoother): loss_t = (1 - eps_ls)(-log p_t[y_t]) + eps_ls
mean_v(-log p_t[v]), averaged over the N tokens. logits: [N, V] float32/float64 (contiguous rows,
read in place); targets: [N] int32/int64 in [0, V); eps_ls in [0, 1). Returns: dict with loss,
grad ([N, V], same dtype), metrics (loss).)");
  m.def("entropy_bonus", &entropy_bonus, "logits"_a, py::kw_only(),
        "w_ent"_a = losses::hir_defaults::w_ent,
        R"(entropy_bonus(logits, *, w_ent=0.001) -> dict

-w_ent * mean_t H_t over the rows of logits [N, V] (added to a loss, it rewards entropy).
Returns: dict with loss (the value, <= 0), grad [N, V], metrics (entropy_bonus).)");
  m.def("contrastive_instruction_loss_2way", &contrast_2way, "ell_positive"_a, "ell_negative"_a,
        py::kw_only(), "eps_ls"_a = losses::hir_defaults::eps_ls,
        R"(contrastive_instruction_loss_2way(ell_positive, ell_negative, *, eps_ls=0.2) -> dict

The HIR code's 2-way smoothed contrast: q+ = sigma(ell+ - ell-), loss_i = (1 - eps_ls)(-log q+) +
eps_ls(-log q-), averaged over the [N] pairs; eps_ls in [0, 0.5]. Returns: dict with loss,
grad_positive, grad_negative [N], metrics (loss).)");
  m.def("contrastive_instruction_loss", &contrast_kway, "ell"_a, "positive"_a = none, py::kw_only(),
        "eps_ls"_a = losses::hir_defaults::eps_ls,
        R"(contrastive_instruction_loss(ell, positive=None, *, eps_ls=0.2) -> dict

The paper's k-way instruction contrast: row i of ell ([B, K], K >= 2) holds the scores of output i
under K instructions, positive[i] (int64 [B]) the column of its relabeled instruction (None:
column i when K == B, else column 0); cross-entropy of softmax(ell_i) against (1 - eps_ls) on the
positive, eps_ls / (K - 1) elsewhere, averaged. Returns: dict with loss, grad [B, K], metrics.)");
  m.def("sequence_log_likelihoods", &sequence_likelihoods, "token_logps"_a, "offsets"_a,
        py::kw_only(), "reduction"_a = "mean_token",
        R"(sequence_log_likelihoods(token_logps, offsets, *, reduction='mean_token') -> array

Per-sequence scores of HIR's contrast from [T] token log-likelihoods and [N + 1] offsets: the sum
('sum') or the sum / max(L, 1) ('mean_token'). Returns [N] of the input's dtype.)");
}

}  // namespace prefopt::python
