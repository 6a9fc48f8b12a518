/// \file
/// `prefopt.diagnostics`: duality gaps, exploitability, KL divergences and win rates of tabular
/// policies in a preference game (diagnostics/*.hpp), and the equilibrium solvers
/// `solve_regularised` (tau > 0) and `solve_unregularised` (tau = 0). Policies are `[contexts, n]`
/// probability tables (a `[n]` vector for a single-context game), converted as in tabular.hpp.

#include <cmath>
#include <limits>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <string>
#include <string_view>
#include <vector>

#include "bindings.hpp"
#include "prefopt/diagnostics/divergence.hpp"
#include "prefopt/diagnostics/duality_gap.hpp"
#include "prefopt/diagnostics/equilibrium.hpp"
#include "prefopt/diagnostics/symmetric_game_lp.hpp"
#include "prefopt/diagnostics/win_rate.hpp"
#include "tabular.hpp"

namespace prefopt::python {

namespace {

using namespace pybind11::literals;

/// `tau=None` is the game's tau (NaN for the C++ functions).
double tau_in(const char* fn, py::handle tau) {
  if (tau.is_none()) return std::numeric_limits<double>::quiet_NaN();
  const double t = tau.cast<double>();
  if (!(std::isfinite(t) && t >= 0.0)) {
    PREFOPT_THROW(invalid_argument, fn, ": tau = ", t, ", expected a finite tau >= 0 (or None)");
  }
  return t;
}

py::dict equilibrium_dict(const equilibrium& eq) {
  std::vector<std::string> methods;
  for (const auto method : eq.methods) methods.emplace_back(to_string(method));
  py::object logits = eq.logits.size() > 0 ? py::object(to_numpy(eq.logits)) : py::none();
  return py::dict("probabilities"_a = to_numpy(eq.probabilities), "logits"_a = logits,
                  "gaps"_a = to_numpy(eq.gaps), "raw_gaps"_a = to_numpy(eq.raw_gaps),
                  "gap"_a = eq.gap, "kl_bound"_a = eq.kl_bound, "iterations"_a = eq.iterations,
                  "methods"_a = methods, "method"_a = eq.method());
}

unregularised_method method_in(std::string_view name) {
  if (name == "automatic") return unregularised_method::automatic;
  if (name == "interior_point") return unregularised_method::interior_point;
  if (name == "optimistic_mwu") return unregularised_method::optimistic_mwu;
  PREFOPT_THROW(invalid_argument, "solve_unregularised: method = '", name,
                "', expected 'automatic', 'interior_point' or 'optimistic_mwu'");
}

/// Binds `name(game, policy, tau=None) -> R` for a diagnostic `f(game, table, tau)`.
template <class F>
void def_gap(py::module_& m, const char* name, F f, const char* doc) {
  m.def(
      name,
      [name, f](const preference_game& game, py::handle policy, py::handle tau) {
        const row_matrix_d pi = policy_in(name, "policy", game, policy);
        return f(game, pi, tau_in(name, tau));
      },
      "game"_a, "policy"_a, "tau"_a = py::none(), doc);
}

/// Binds `name(game, p, q) -> R` for a two-policy diagnostic `f(game, p, q)`.
template <class F>
void def_pair(py::module_& m, const char* name, const char* a, const char* b, F f,
              const char* doc) {
  m.def(
      name,
      [name, a, b, f](const preference_game& game, py::handle p, py::handle q) {
        const row_matrix_d pp = policy_in(name, a, game, p);
        const row_matrix_d qq = policy_in(name, b, game, q);
        return f(game, pp, qq);
      },
      "game"_a, py::arg(a), py::arg(b), doc);
}

}  // namespace

void bind_diagnostics(py::module_& m) {
  py::options doc_options;
  doc_options.disable_function_signatures();
  using table = row_matrix_d;

  def_gap(
      m, "duality_gap",
      [](const preference_game& g, const table& pi, double tau) { return duality_gap(g, pi, tau); },
      R"(duality_gap(game, policy, tau=None) -> float

rho-weighted duality gap sum_x rho(x) max(0, DualGap_tau(pi(.|x))) of the symmetric profile
(pi, pi) (ALGORITHMS.md §9.1): per context, with g = P pi,
DualGap_tau = 2 [tau log sum_y mu(y) exp(g_y / tau) + tau KL(pi, mu)] - 1 (tau > 0) and
2 max_y g_y - 1 (tau = 0). tau: the game's when None. policy: [contexts, n] probabilities (or [n]
for one context; rows summing to 1 within 1e-6). Certificate: KL(pi, pi*_tau) <= gap / (2 tau).
Raises prefopt.ShapeError / prefopt.InvalidArgument naming the argument and row.)");
  def_gap(
      m, "duality_gaps",
      [](const preference_game& g, const table& pi, double tau) {
        return to_numpy(duality_gaps(g, pi, tau));
      },
      "duality_gaps(game, policy, tau=None) -> array\n\nPer-context gaps max(0, "
      "DualGap_tau(pi(.|x))), [contexts] (see duality_gap).");
  def_gap(
      m, "raw_duality_gaps",
      [](const preference_game& g, const table& pi, double tau) {
        return to_numpy(raw_duality_gaps(g, pi, tau));
      },
      "raw_duality_gaps(game, policy, tau=None) -> array\n\nPer-context gaps as computed, not "
      "clamped at 0 (rounding can make them about -1e-16 at an equilibrium).");
  def_gap(
      m, "exploitability",
      [](const preference_game& g, const table& pi, double tau) {
        return exploitability(g, pi, tau);
      },
      "exploitability(game, policy, tau=None) -> float\n\nmax_p V_tau(p, pi) - 1/2 = "
      "duality_gap / 2, rho-weighted.");
  m.def(
      "unregularised_duality_gap",
      [](const preference_game& g, py::handle policy) {
        return unregularised_duality_gap(
            g, policy_in("unregularised_duality_gap", "policy", g, policy));
      },
      "game"_a, "policy"_a,
      "unregularised_duality_gap(game, policy) -> float\n\nThe tau = 0 gap 2 max_y P(y > pi) - "
      "1, rho-weighted.");

  def_pair(
      m, "kl_divergence", "p", "q",
      [](const preference_game& g, const table& p, const table& q) {
        return kl_divergence(g, p, q);
      },
      "kl_divergence(game, p, q) -> float\n\nsum_x rho(x) KL(p(.|x), "
      "q(.|x)) (p is the sampling distribution; inf where q = 0 < p).");
  def_pair(
      m, "kl_divergences", "p", "q",
      [](const preference_game& g, const table& p, const table& q) {
        return to_numpy(kl_divergences(g, p, q));
      },
      "kl_divergences(game, p, q) -> array\n\nPer-context KL(p(.|x), q(.|x)), [contexts].");
  m.def(
      "kl_to_reference",
      [](const preference_game& g, py::handle policy) {
        return kl_to_reference(g, policy_in("kl_to_reference", "policy", g, policy));
      },
      "game"_a, "policy"_a,
      "kl_to_reference(game, policy) -> float\n\nKL_rho(pi, mu), the regulariser of the game.");
  def_pair(
      m, "win_rate", "policy", "other",
      [](const preference_game& g, const table& p, const table& q) { return win_rate(g, p, q); },
      "win_rate(game, policy, other) -> float\n\nP(pi > pi') = sum_x rho(x) pi(.|x)^T P[x] "
      "pi'(.|x).");
  def_pair(
      m, "win_rates", "policy", "other",
      [](const preference_game& g, const table& p, const table& q) {
        return to_numpy(win_rates(g, p, q));
      },
      "win_rates(game, policy, other) -> array\n\nPer-context P(pi > pi' | x), [contexts].");
  m.def(
      "regularised_win_rate",
      [](const preference_game& g, py::handle policy, py::handle other, py::handle tau) {
        constexpr const char* fn = "regularised_win_rate";
        return regularised_win_rate(g, policy_in(fn, "policy", g, policy),
                                    policy_in(fn, "other", g, other), tau_in(fn, tau));
      },
      "game"_a, "policy"_a, "other"_a, "tau"_a = py::none(),
      "regularised_win_rate(game, policy, other, tau=None) -> float\n\nP_tau(pi > pi') = P(pi > "
      "pi') - tau KL_rho(pi, mu) + tau KL_rho(pi', mu) (the game's tau when None).");

  m.def(
      "solve_regularised",
      [](const preference_game& g, double target_gap, index_t max_newton_iterations,
         index_t dense_limit) {
        regularised_equilibrium_options o;
        o.target_gap = target_gap;
        o.max_newton_iterations = max_newton_iterations;
        o.dense_limit = dense_limit;
        equilibrium eq;
        {
          py::gil_scoped_release release;
          eq = solve_regularised(g, o);
        }
        return equilibrium_dict(eq);
      },
      "game"_a, py::kw_only(), "target_gap"_a = 1e-12, "max_newton_iterations"_a = 200,
      "dense_limit"_a = 1024,
      R"(solve_regularised(game, *, target_gap=1e-12, max_newton_iterations=200, dense_limit=1024) -> dict

The regularised equilibrium pi*_tau of every context (game.tau > 0), the fixed point
pi = softmax(log mu + P pi / tau), by damped Newton (dense LU up to dense_limit actions, GMRES
above), to duality gap <= target_gap per context. Returns a dict: probabilities and logits
[contexts, n], gaps and raw_gaps [contexts], gap (rho-weighted), kl_bound (KL(pi, pi*) <= gap /
(2 tau)), iterations, methods (per context), method. Raises prefopt.InvalidArgument (tau = 0)
and prefopt.ConvergenceError (target missed). The GIL is released while it runs.)");
  m.def(
      "solve_unregularised",
      [](const preference_game& g, double target_gap, std::string_view method,
         index_t interior_point_limit, index_t max_interior_point_iterations,
         index_t max_iterations, double eta, index_t check_every) {
        unregularised_equilibrium_options o;
        o.target_gap = target_gap;
        o.method = method_in(method);
        o.interior_point_limit = interior_point_limit;
        o.max_interior_point_iterations = max_interior_point_iterations;
        o.max_iterations = max_iterations;
        o.eta = eta;
        o.check_every = check_every;
        equilibrium eq;
        {
          py::gil_scoped_release release;
          eq = solve_unregularised(g, o);
        }
        return equilibrium_dict(eq);
      },
      "game"_a, py::kw_only(), "target_gap"_a = 1e-10, "method"_a = "automatic",
      "interior_point_limit"_a = 4096, "max_interior_point_iterations"_a = 100,
      "max_iterations"_a = 2'000'000, "eta"_a = 0.5, "check_every"_a = 50,
      R"(solve_unregularised(game, *, target_gap=1e-10, method='automatic', interior_point_limit=4096, max_interior_point_iterations=100, max_iterations=2000000, eta=0.5, check_every=50) -> dict

A tau = 0 equilibrium of every context (the game's tau is ignored), with certified per-context
gaps <= target_gap: a Condorcet winner (pure, gap 0), the 3-action closed form, or the linear
program by the self-dual interior-point method with crossover (method 'interior_point', default
up to interior_point_limit actions), or averaged optimistic MWU with step eta <= 1/2 (method
'optimistic_mwu'). Returns the dict of solve_regularised (kl_bound NaN). Raises
prefopt.InvalidArgument (bad options) and prefopt.ConvergenceError (target missed).)");
  m.def(
      "solve_symmetric_game_lp",
      [](py::handle p, double target_gap, index_t max_iterations, double crossover_gap,
         int max_correctors) {
        const matrix_d pm = table_in("solve_symmetric_game_lp", "p", p, -1, -1);
        symmetric_game_lp_options o;
        o.target_gap = target_gap;
        o.max_iterations = max_iterations;
        o.crossover_gap = crossover_gap;
        o.max_correctors = max_correctors;
        symmetric_game_lp_solution r;
        {
          py::gil_scoped_release release;
          r = solve_symmetric_game_lp(pm, o);
        }
        return py::dict("probabilities"_a = to_numpy(r.probabilities), "gap"_a = r.gap,
                        "raw_gap"_a = r.raw_gap, "iterations"_a = r.iterations,
                        "crossover_attempts"_a = r.crossover_attempts, "crossover"_a = r.crossover,
                        "converged"_a = r.converged);
      },
      "p"_a, py::kw_only(), "target_gap"_a = 1e-12, "max_iterations"_a = 100,
      "crossover_gap"_a = 1e-4, "max_correctors"_a = 3,
      R"(solve_symmetric_game_lp(p, *, target_gap=1e-12, max_iterations=100, crossover_gap=1e-4, max_correctors=3) -> dict

The exact tau = 0 equilibrium of one preference matrix p ([n, n], entries in [0, 1], P + P^T = 1)
as the linear program min t s.t. (P - 1/2) x <= t, x on the simplex, by the self-dual
interior-point method with crossover (diagnostics/symmetric_game_lp.hpp; what
solve_unregularised uses per context). Does not raise when the target is missed: returns a dict
with probabilities [n], gap = max(0, 2 max_y (P pi)_y - 1), raw_gap, iterations,
crossover_attempts, crossover (the point comes from a support solve) and converged.)");
}

}  // namespace prefopt::python
