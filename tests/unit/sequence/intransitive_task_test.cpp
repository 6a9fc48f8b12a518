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
