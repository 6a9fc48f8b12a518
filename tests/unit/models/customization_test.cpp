#include "prefopt/core/customization.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "prefopt/models/preference/tabular.hpp"
#include "support/laws.hpp"

using prefopt::vector_d;

namespace {
/// A user policy with only the required members: probabilities come from a fixed table.
struct minimal_policy {
  using batch_type = prefopt::tabular_batch;
  prefopt::row_matrix_d table;
  [[nodiscard]] prefopt::index_t num_contexts() const { return table.rows(); }
  [[nodiscard]] prefopt::index_t num_actions() const { return table.cols(); }
  void probabilities(prefopt::index_t c, Eigen::Ref<vector_d> out) const {
    out = table.row(c).transpose();
  }
  void log_prob(const batch_type& b, Eigen::Ref<vector_d> out) const {
    for (prefopt::index_t i = 0; i < b.size(); ++i) {
      out[i] = std::log(
          table(b.contexts[static_cast<std::size_t>(i)], b.actions[static_cast<std::size_t>(i)]));
    }
  }
};

/// A user preference model with only `preference` (no matrix accessor): P = [[.5,.8],[.2,.5]].
struct minimal_preference {
  using batch_type = prefopt::tabular_batch;
  [[nodiscard]] prefopt::index_t num_contexts() const { return 1; }
  [[nodiscard]] prefopt::index_t num_actions() const { return 2; }
  void preference(const prefopt::pair_batch<batch_type>& pairs, Eigen::Ref<vector_d> out) const {
    for (prefopt::index_t i = 0; i < pairs.size(); ++i) {
      const auto a = pairs.first.actions[static_cast<std::size_t>(i)];
      const auto b = pairs.second.actions[static_cast<std::size_t>(i)];
      out[i] = a == b ? 0.5 : (a == 0 ? 0.8 : 0.2);
    }
  }
};
}  // namespace

static_assert(prefopt::TabularPolicy<minimal_policy>);
static_assert(!prefopt::DifferentiablePolicy<minimal_policy>);
static_assert(prefopt::TabularPreferenceModel<minimal_preference>);

TEST_CASE("derived log_probabilities and sample work for a policy with only required members",
          "[models][customization]") {
  minimal_policy pi{prefopt::row_matrix_d(1, 3)};
  pi.table << 0.5, 0.0, 0.5;
  prefopt::test::check_policy_laws(pi);
  vector_d lp(3);
  prefopt::log_probabilities(pi, 0, lp);
  CHECK(lp[0] == Approx(std::log(0.5)));
  CHECK(std::isinf(lp[1]));
  prefopt::rng gen(1);
  for (int i = 0; i < 1000; ++i) CHECK(prefopt::sample(pi, 0, gen) != 1);
}

TEST_CASE("derived preference_matrix queries preference() on all ordered pairs",
          "[models][customization]") {
  const minimal_preference m;
  prefopt::test::check_preference_laws(m);
  prefopt::matrix_d p(2, 2);
  prefopt::preference_matrix(m, 0, p);
  CHECK(p(0, 1) == 0.8);
  CHECK(p(1, 0) == 0.2);
  prefopt::matrix_d wrong(3, 3);
  CHECK_THROWS_AS(prefopt::preference_matrix(m, 0, wrong), prefopt::shape_error);
}

TEST_CASE("probability_table stacks every context's probabilities", "[models][customization]") {
  minimal_policy pi{prefopt::row_matrix_d(2, 3)};
  pi.table << 0.5, 0.0, 0.5, 0.1, 0.2, 0.7;
  CHECK(prefopt::probability_table(pi) == pi.table);
}
