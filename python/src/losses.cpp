/// \file
/// `prefopt.losses`: the sequence-level losses of include/prefopt/losses/ (DPO family, Bradley-
/// Terry, PPO policy / value losses, GAE, whitening) on NumPy arrays and CPU torch tensors. Each
/// returns a dict with the reduced `loss` (a Python float), the per-element arrays, the gradients
/// of the reduced loss, and `metrics` under the C++ (TRL) names.

#include <cstdint>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <string>
#include <string_view>
#include <vector>

#include "arrays.hpp"
#include "bindings.hpp"
#include "loss_args.hpp"
#include "prefopt/losses/bradley_terry.hpp"
#include "prefopt/losses/dpo.hpp"
#include "prefopt/losses/ppo.hpp"

namespace prefopt::python {

namespace {

using namespace pybind11::literals;

py::dict dpo(py::handle policy_chosen, py::handle policy_rejected, py::handle reference_chosen,
             py::handle reference_rejected, py::handle chosen_lengths, py::handle rejected_lengths,
             std::string_view variant, double beta_dpo, bool length_average, double eps_ls,
             double gamma_simpo, std::string_view reduce) {
  const char* fn = "dpo_loss";
  const auto first = as_array(fn, "policy_chosen", policy_chosen);
  return dispatch_float(fn, "policy_chosen", first, [&]<class T>() -> py::dict {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[6];
    std::vector<index_t> b1, b2;
    const auto pc = vec<T>(fn, "policy_chosen", first, n, k[0]);
    const auto pr = vec<T>(fn, "policy_rejected", policy_rejected, n, k[1]);
    const auto rc = optional_vec<T>(fn, "reference_chosen", reference_chosen, n, k[2]);
    const auto rr = optional_vec<T>(fn, "reference_rejected", reference_rejected, n, k[3]);
    const auto lc = indices_in(fn, "chosen_lengths", chosen_lengths, n, k[4], b1);
    const auto lr = indices_in(fn, "rejected_lengths", rejected_lengths, n, k[5], b2);
    losses::dpo_config c;
    c.beta_dpo = beta_dpo;
    c.length_average = length_average;
    c.eps_ls = eps_ls;
    c.gamma_simpo = gamma_simpo;
    c.reduce = reduction_in(fn, reduce);
    const losses::dpo_inputs<T> in{pc, pr, rc, rr, lc, lr};
    py::array_t<T> per_pair(n), g_c(n), g_r(n);
    Eigen::Map<vector_t<T>> l(per_pair.mutable_data(), n), gc(g_c.mutable_data(), n),
        gr(g_r.mutable_data(), n);
    auto run = [&]<class Variant>() { return losses::dpo_loss<Variant>(c).compute(in, l, gc, gr); };
    losses::dpo_metrics<T> m;
    if (variant == "sigmoid") {
      m = run.template operator()<losses::dpo_variant::sigmoid>();
    } else if (variant == "label_smoothed") {
      m = run.template operator()<losses::dpo_variant::label_smoothed>();
    } else if (variant == "robust") {
      m = run.template operator()<losses::dpo_variant::robust>();
    } else if (variant == "ipo") {
      m = run.template operator()<losses::dpo_variant::ipo>();
    } else if (variant == "hinge") {
      m = run.template operator()<losses::dpo_variant::hinge>();
    } else if (variant == "simpo") {
      m = run.template operator()<losses::dpo_variant::simpo>();
    } else {
      PREFOPT_THROW(invalid_argument, fn, ": variant = '", variant,
                    "', expected one of sigmoid, label_smoothed, robust, ipo, hinge, simpo");
    }
    return py::dict("loss"_a = static_cast<double>(m.loss), "losses"_a = per_pair,
                    "grad_policy_chosen"_a = g_c, "grad_policy_rejected"_a = g_r,
                    "metrics"_a = named_metrics(m));
  });
}

py::dict bradley_terry(py::handle r_chosen, py::handle r_rejected, py::handle margin,
                       double c_center, std::string_view reduce) {
  const char* fn = "bradley_terry_loss";
  const auto first = as_array(fn, "r_chosen", r_chosen);
  return dispatch_float(fn, "r_chosen", first, [&]<class T>() -> py::dict {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[3];
    const auto rc = vec<T>(fn, "r_chosen", first, n, k[0]);
    const auto rr = vec<T>(fn, "r_rejected", r_rejected, n, k[1]);
    const auto mg = optional_vec<T>(fn, "margin", margin, n, k[2]);
    losses::bradley_terry_options o;
    o.c_center = c_center;
    o.reduce = reduction_in(fn, reduce);
    py::array_t<T> g_c(n), g_r(n);
    Eigen::Map<vector_t<T>> gc(g_c.mutable_data(), n), gr(g_r.mutable_data(), n);
    const auto m = losses::bradley_terry_loss<T>(rc, rr, mg, gc, gr, o);
    return py::dict("loss"_a = static_cast<double>(m.loss), "grad_chosen"_a = g_c,
                    "grad_rejected"_a = g_r, "metrics"_a = named_metrics(m));
  });
}

py::dict ppo_policy(py::handle new_logps, py::handle old_logps, py::handle advantages,
                    double eps_clip) {
  const char* fn = "ppo_policy_loss";
  const auto first = as_array(fn, "new_logps", new_logps);
  return dispatch_float(fn, "new_logps", first, [&]<class T>() -> py::dict {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[3];
    const auto nl = vec<T>(fn, "new_logps", first, n, k[0]);
    const auto ol = vec<T>(fn, "old_logps", old_logps, n, k[1]);
    const auto ad = vec<T>(fn, "advantages", advantages, n, k[2]);
    py::array_t<T> grad(n);
    const auto s = losses::ppo_policy_loss<T>(nl, ol, ad, eps_clip,
                                              Eigen::Map<vector_t<T>>(grad.mutable_data(), n));
    py::dict metrics("clip_fraction"_a = static_cast<double>(s.clip_fraction),
                     "approx_kl"_a = static_cast<double>(s.approx_kl),
                     "mean_ratio"_a = static_cast<double>(s.mean_ratio));
    return py::dict("loss"_a = static_cast<double>(s.loss), "grad_new_logps"_a = grad,
                    "metrics"_a = metrics);
  });
}

py::dict ppo_value(py::handle new_values, py::handle old_values, py::handle returns, double eps_v) {
  const char* fn = "ppo_value_loss";
  const auto first = as_array(fn, "new_values", new_values);
  return dispatch_float(fn, "new_values", first, [&]<class T>() -> py::dict {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[3];
    const auto nv = vec<T>(fn, "new_values", first, n, k[0]);
    const auto ov = vec<T>(fn, "old_values", old_values, n, k[1]);
    const auto rt = vec<T>(fn, "returns", returns, n, k[2]);
    py::array_t<T> grad(n);
    const auto s = losses::ppo_value_loss<T>(nv, ov, rt, eps_v,
                                             Eigen::Map<vector_t<T>>(grad.mutable_data(), n));
    py::dict metrics("clip_fraction"_a = static_cast<double>(s.clip_fraction));
    return py::dict("loss"_a = static_cast<double>(s.loss), "grad_new_values"_a = grad,
                    "metrics"_a = metrics);
  });
}

py::tuple gae(py::handle rewards, py::handle values, py::handle offsets, double gamma,
              double lambda) {
  const char* fn = "generalized_advantages";
  const auto first = as_array(fn, "rewards", rewards);
  return dispatch_float(fn, "rewards", first, [&]<class T>() -> py::tuple {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[3];
    std::vector<index_t> buffer;
    const auto r = vec<T>(fn, "rewards", first, n, k[0]);
    const auto v = vec<T>(fn, "values", values, n, k[1]);
    const auto off = indices_in(fn, "offsets", offsets, -1, k[2], buffer);
    if (off.empty() || off.back() > n) {
      PREFOPT_THROW(shape_error, fn, ": offsets must hold N + 1 >= 1 entries ending at most at ", n,
                    " (the number of tokens)");
    }
    py::array_t<T> adv(n), ret(n);
    const std::span<T> a(adv.mutable_data(), static_cast<std::size_t>(n));
    const std::span<T> rr(ret.mutable_data(), static_cast<std::size_t>(n));
    std::fill(a.begin(), a.end(), T(0));
    std::fill(rr.begin(), rr.end(), T(0));
    const std::span<const T> rs(r.data(), static_cast<std::size_t>(n));
    const std::span<const T> vs(v.data(), static_cast<std::size_t>(n));
    losses::generalized_advantages<T>({off, rs}, {off, vs}, gamma, lambda, {off, a}, {off, rr});
    return py::make_tuple(adv, ret);
  });
}

py::array whiten(py::handle values, py::handle offsets, bool shift_mean, double eps,
                 py::handle out) {
  const char* fn = "whiten";
  const auto first = as_array(fn, "values", values);
  return dispatch_float(fn, "values", first, [&]<class T>() -> py::array {
    const index_t n = first.ndim() == 1 ? first.shape(0) : -1;
    py::array k[2];
    std::vector<index_t> buffer;
    const auto v = vec<T>(fn, "values", first, n, k[0]);
    std::vector<index_t> all{0, n};
    const auto off = offsets.is_none() ? std::span<const index_t>(all)
                                       : indices_in(fn, "offsets", offsets, -1, k[1], buffer);
    auto o = vector_out_of<T>(fn, "out", out, n);
    if (o.span.data() != v.data()) std::copy(v.data(), v.data() + n, o.span.begin());
    losses::whiten<T>({off, o.span}, shift_mean, eps);
    return o.array;
  });
}

}  // namespace

void bind_losses(py::module_& m) {
  py::options doc_options;  // signatures are written in the docstrings
  doc_options.disable_function_signatures();
  const auto none = py::none();
  m.def(
      "dpo_loss", &dpo, "policy_chosen"_a, "policy_rejected"_a, "reference_chosen"_a = none,
      "reference_rejected"_a = none, "chosen_lengths"_a = none, "rejected_lengths"_a = none,
      py::kw_only(), "variant"_a = "sigmoid", "beta_dpo"_a = 0.1, "length_average"_a = false,
      "eps_ls"_a = 0.0, "gamma_simpo"_a = 0.0, "reduction"_a = "mean",
      R"(dpo_loss(policy_chosen, policy_rejected, reference_chosen=None, reference_rejected=None, chosen_lengths=None, rejected_lengths=None, *, variant='sigmoid', beta_dpo=0.1, length_average=False, eps_ls=0.0, gamma_simpo=0.0, reduction='mean') -> dict

The direct-alignment family on sequence log-prob sums (response tokens only). With
``h = (S_w - R_w)/a_w - (S_l - R_l)/a_l`` (``a = max(n, 1)`` with ``length_average``, else 1; SimPO
drops R) and ``u = beta_dpo h``, ``variant`` selects the loss: ``sigmoid`` (DPO, -log sigma(u)),
``label_smoothed`` (conservative DPO, eps_ls in [0, 0.5)), ``robust`` (provably robust DPO,
((1 - eps_ls) softplus(-u) - eps_ls softplus(u)) / (1 - 2 eps_ls)), ``ipo`` ((h - 1/(2 beta_dpo))^2), ``hinge``
(SLiC, max(0, 1 - u)), ``simpo`` (-log sigma(u - gamma_simpo), reference-free).

Args: ``[N]`` float32/float64 sums; lengths ``[N]`` int64 (int32 widened), needed with
length_average. reduction: 'mean' or 'sum'.
Returns: dict with ``loss`` (float, reduced), ``losses`` ``[N]``, ``grad_policy_chosen`` and
``grad_policy_rejected`` ``[N]`` (gradients of the reduced loss w.r.t. the policy sums; spread them
onto tokens with dS/dl_t = 1), ``metrics`` (TRL names: rewards/chosen, rewards/rejected,
rewards/margins, rewards/accuracies, logps/chosen, logps/rejected, lengths/chosen, lengths/rejected,
loss).
Raises: prefopt.ShapeError, prefopt.InvalidArgument (non-finite sums, beta_dpo <= 0, ...).)");
  m.def(
      "bradley_terry_loss", &bradley_terry, "r_chosen"_a, "r_rejected"_a, "margin"_a = none,
      py::kw_only(), "c_center"_a = 0.0, "reduction"_a = "mean",
      R"(bradley_terry_loss(r_chosen, r_rejected, margin=None, *, c_center=0.0, reduction='mean') -> dict

Pairwise Bradley-Terry reward-model loss ``-log sigma(r_w - r_l - m) + c_center (r_w + r_l)^2``.
Args: ``[N]`` float32/float64 rewards, optional ``[N]`` margins.
Returns: dict with ``loss``, ``grad_chosen``, ``grad_rejected`` ``[N]``, ``metrics`` (TRL
RewardTrainer names).)");
  m.def("ppo_policy_loss", &ppo_policy, "new_logps"_a, "old_logps"_a, "advantages"_a, py::kw_only(),
        "eps_clip"_a = 0.2,
        R"(ppo_policy_loss(new_logps, old_logps, advantages, *, eps_clip=0.2) -> dict

Clipped surrogate ``mean_t max(-A rho, -A clip(rho, 1 - eps_clip, 1 + eps_clip))``,
``rho = exp(new - old)``, over ``[T]`` valid tokens.
Returns: dict with ``loss``, ``grad_new_logps`` ``[T]`` (0 in the clipped region), ``metrics``
(clip_fraction, approx_kl = 0.5 mean (new - old)^2, mean_ratio).)");
  m.def("ppo_value_loss", &ppo_value, "new_values"_a, "old_values"_a, "returns"_a, py::kw_only(),
        "eps_v"_a = 0.2,
        R"(ppo_value_loss(new_values, old_values, returns, *, eps_v=0.2) -> dict

Clipped value loss ``0.5 mean_t max((V - Ret)^2, (clip(V, V_old - eps_v, V_old + eps_v) - Ret)^2)``.
Returns: dict with ``loss``, ``grad_new_values`` ``[T]``, ``metrics`` (clip_fraction).)");
  m.def(
      "generalized_advantages", &gae, "rewards"_a, "values"_a, "offsets"_a, py::kw_only(),
      "gamma"_a = 1.0, "lam"_a = 0.95,
      R"(generalized_advantages(rewards, values, offsets, *, gamma=1.0, lam=0.95) -> (advantages, returns)

GAE per sequence: ``delta_t = r_t + gamma V_{t+1} - V_t``, ``A_t = delta_t + gamma lam A_{t+1}``,
``Ret_t = A_t + V_t``. rewards, values: ``[T]`` tokens of all sequences back to back; offsets:
``[N + 1]`` int64 (sequence i is ``offsets[i]:offsets[i+1]``). Tokens outside every sequence get 0.)");
  m.def("whiten", &whiten, "values"_a, "offsets"_a = none, py::kw_only(), "shift_mean"_a = true,
        "eps"_a = 1e-8, "out"_a = none,
        R"(whiten(values, offsets=None, *, shift_mean=True, eps=1e-8, out=None) -> array

``(x - mean) / sqrt(var + eps)`` over the tokens of every sequence (Bessel-corrected, double
accumulation); ``shift_mean=False`` adds the mean back. Writes into ``out`` (``out=values``: in
place) or a fresh array (a copy of values, then whitened).)");
}

}  // namespace prefopt::python
