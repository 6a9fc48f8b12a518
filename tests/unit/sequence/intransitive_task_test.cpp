// The intransitive class task: preference laws, a preference cycle no reward explains, and the
// known class-level Nash equilibrium.
#include "prefopt/sequence/intransitive_task.hpp"

#include <catch2/catch.hpp>

#include <vector>

#include "prefopt/core/random.hpp"
#include "support/laws.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::token_id;
using prefopt::vector_d;

prefopt::intransitive_class_task make_task(double w) {
  return {(vector_d(3) << 0.5, -0.2, 0.1).finished(), 1.0, 2.0, 0.5, w};
}
}  // namespace

TEST_CASE("intransitive task: judge obeys the preference laws", "[sequence]") {
  const auto task = make_task(0.3);
  prefopt::rng gen(1);
  std::vector<index_t> po(41, 0), ao{0}, bo{0};
  std::vector<token_id> at, bt;
  for (int i = 0; i < 40; ++i) {
    for (index_t t = 0, n = 1 + gen.uniform_index(5); t < n; ++t) {
      at.push_back(static_cast<token_id>(gen.uniform_index(4)));
    }
    for (index_t t = 0, n = 1 + gen.uniform_index(5); t < n; ++t) {
      bt.push_back(static_cast<token_id>(gen.uniform_index(4)));
    }
    ao.push_back(static_cast<index_t>(at.size()));
    bo.push_back(static_cast<index_t>(bt.size()));
  }
  const std::vector<token_id> none;
  const prefopt::sequence_batch a{{po, none}, {ao, at}}, b{{po, none}, {bo, bt}};
  vector_d pab(40), pba(40), paa(40);
  task.judge().preference({a, b}, pab);
  task.judge().preference({b, a}, pba);
  task.judge().preference({a, a}, paa);
  CHECK((pab + pba - vector_d::Ones(40)).cwiseAbs().maxCoeff() < 1e-15);
  CHECK((paa.array() == 0.5).all());
  CHECK((pab.array() >= 0.0).all());
  CHECK((pab.array() <= 1.0).all());
}

TEST_CASE("intransitive task: classes form a cycle that no reward explains", "[sequence]") {
  const auto task = make_task(0.0);
  // [0, eos], [1, eos], [2, eos] have classes 0, 1, 2.
  const std::vector<index_t> po{0, 0, 0, 0}, o{0, 2, 4, 6};
  const std::vector<token_id> none, first{0, 3, 1, 3, 2, 3}, second{1, 3, 2, 3, 0, 3};
  CHECK(task.response_class(std::span<const token_id>(first).subspan(4, 2)) == 2);
  CHECK(task.response_class(std::vector<token_id>{2, 2, 3, 1}) == 1);  // tokens after eos ignored
  vector_d p(3);
  task.judge().preference({{{po, none}, {o, first}}, {{po, none}, {o, second}}}, p);
  // 0 beats 1, 1 beats 2, 2 beats 0: r(0) > r(1) > r(2) > r(0) is impossible.
  CHECK(p(0) > 0.5);
  CHECK(p(1) > 0.5);
  CHECK(p(2) > 0.5);
  CHECK(p(0) == Approx(0.5 + 0.5 * 1.0 / 2.0));
}

TEST_CASE("intransitive task: the class equilibrium makes every class indifferent", "[sequence]") {
  const auto task = make_task(0.0);
  const vector_d pi = task.class_equilibrium();
  CHECK(pi.sum() == Approx(1.0));
  CHECK((pi.array() > 0.0).all());
  // pi^T M = 0: against pi every class wins exactly half the time (the game's value).
  CHECK((task.class_matrix().transpose() * pi).cwiseAbs().maxCoeff() < 1e-15);
  // Any other mixture is exploitable: some class beats it.
  const vector_d uniform = vector_d::Constant(3, 1.0 / 3.0);
  CHECK((task.class_matrix() * uniform).maxCoeff() > 0.1);
}

TEST_CASE("intransitive task: bad settings are named", "[sequence]") {
  using prefopt::test::contains;
  CHECK_THROWS_WITH(make_task(1.0), contains("quality_weight = 1, expected a value in [0, 1)"));
  CHECK_THROWS_WITH(prefopt::intransitive_class_task(vector_d::Zero(2), 1.0, 0.0, 1.0, 0.0),
                    contains("margin b = 0"));
}

TEST_CASE(
    "intransitive task: class duality gap is 0 at the equilibrium and the judge's at a pure class",
    "[sequence]") {
  const auto task = make_task(0.0);
  CHECK(std::abs(task.class_duality_gap(task.class_equilibrium())) < 1e-15);
  // Against pure class 0, class 2 wins with probability 1/2 + b / (2 max margin): the gap is
  // 2 P(2 > 0) - 1 = b / max margin = 2 / 2.
  const vector_d pure0 = (vector_d(3) << 1.0, 0.0, 0.0).finished();
  CHECK(task.class_duality_gap(pure0) == Approx(1.0));
  const vector_d pure1 = (vector_d(3) << 0.0, 1.0, 0.0).finished();
  CHECK(task.class_duality_gap(pure1) == Approx(1.0 / 2.0));  // class 0 beats 1 by a = 1
  // Equals 2 max_c P(c > p) - 1 under the judge, with P(c > p) = sum_k p_k P(c > k).
  const vector_d p = (vector_d(3) << 0.2, 0.5, 0.3).finished();
  const std::vector<index_t> po{0, 0}, o{0, 2};
  const std::vector<token_id> none;
  double best = 0.0;
  for (token_id c = 0; c < 3; ++c) {
    double win = 0.0;
    for (token_id k = 0; k < 3; ++k) {
      const std::vector<token_id> yc{c, 3}, yk{k, 3};
      vector_d pk(1);
      task.judge().preference({{{po, none}, {o, yc}}, {{po, none}, {o, yk}}}, pk);
      win += p(k) * pk(0);
    }
    best = std::max(best, 2.0 * win - 1.0);
  }
  CHECK(task.class_duality_gap(p) == Approx(best));
  using prefopt::test::contains;
  CHECK_THROWS_WITH(task.class_duality_gap(vector_d::Constant(2, 0.5)),
                    contains("class_duality_gap: p has 2 entries, expected 3"));
  CHECK_THROWS_WITH(task.class_duality_gap((vector_d(3) << 0.5, 0.6, -0.1).finished()),
                    contains("class_duality_gap: p[2] = -0.1, expected a probability"));
  CHECK_THROWS_WITH(task.class_duality_gap(vector_d::Constant(3, 0.5)),
                    contains("p sums to 1.5, expected 1"));
}

TEST_CASE("intransitive task: quality reward is the judge's transitive score", "[sequence]") {
  const auto task = make_task(0.4);
  // [0, 1, eos, 2] scores q0 + q1 (tokens after eos ignored); [2] scores q2; [] scores 0.
  const std::vector<index_t> po{0, 0, 0, 0}, o{0, 4, 5, 5};
  const std::vector<token_id> none, y{0, 1, 3, 2, 2};
  vector_d r(3);
  task.quality_reward().reward({{po, none}, {o, y}}, r);
  CHECK(r(0) == Approx(0.5 - 0.2));
  CHECK(r(1) == Approx(0.1));
  CHECK(r(2) == 0.0);
  const std::vector<token_id> bad{0, 7, 3, 2, 2};
  using prefopt::test::contains;
  CHECK_THROWS_WITH(task.quality_reward().reward({{po, none}, {o, bad}}, r),
                    contains("quality_reward_model::reward: batch.responses[0][1] = 7"));
}
