// The modular-sum instruction task for HIR: feedback, hindsight relabeling (every relabeled
// example succeeds, the negative instruction never does), the judge, and the errors.
#include "prefopt/sequence/instruction_task.hpp"

#include <catch2/catch.hpp>

#include <vector>

#include "prefopt/core/random.hpp"
#include "support/laws.hpp"

namespace {
using index_t = prefopt::index_t;
using prefopt::token_id;
using prefopt::vector_d;
}  // namespace

TEST_CASE("instruction task: feedback, relabeling and the contrast instruction", "[sequence]") {
  const prefopt::modular_sum_instruction_task task(/*content_tokens=*/4, /*modulus=*/3);
  CHECK(task.eos() == 4);
  prefopt::rng gen(2);
  std::vector<index_t> po{0}, ro{0};
  std::vector<token_id> pt, rt;
  for (int i = 0; i < 60; ++i) {
    pt.push_back(static_cast<token_id>(gen.uniform_index(3)));
    pt.push_back(static_cast<token_id>(gen.uniform_index(4)));  // free context
    po.push_back(static_cast<index_t>(pt.size()));
    for (index_t t = 0, n = gen.uniform_index(5); t < n; ++t) {
      rt.push_back(static_cast<token_id>(gen.uniform_index(4)));
    }
    rt.push_back(4);
    ro.push_back(static_cast<index_t>(rt.size()));
  }
  const prefopt::sequence_batch b{{po, pt}, {ro, rt}};
  vector_d r(60);
  task.feedback().reward(b, r);
  for (index_t i = 0; i < 60; ++i) {
    const auto y = b.responses.sequence(i);
    index_t s = 0;
    for (std::size_t t = 0; t + 1 < y.size(); ++t) s += y[t];
    CHECK(r(i) == (s % 3 == b.prompts.sequence(i)[0] ? 1.0 : 0.0));
    CHECK(task.satisfied_instruction(y) != task.negative_instruction(y));
  }
  CHECK(r.sum() > 5.0);   // some successes
  CHECK(r.sum() < 55.0);  // and failures

  std::vector<index_t> new_offsets;
  std::vector<token_id> new_prompts;
  task.relabel_prompts(b, new_offsets, new_prompts);
  CHECK(new_offsets == po);
  vector_d relabeled(60);
  task.feedback().reward({{new_offsets, new_prompts}, b.responses}, relabeled);
  CHECK((relabeled.array() == 1.0).all());
  for (index_t i = 0; i < 60; ++i) {
    CHECK(new_prompts[static_cast<std::size_t>(2 * i + 1)] ==
          pt[static_cast<std::size_t>(2 * i + 1)]);
  }

  // The judge prefers success and obeys the laws.
  vector_d p(60), q(60);
  task.judge().preference({{{new_offsets, new_prompts}, b.responses}, b}, p);
  task.judge().preference({b, {{new_offsets, new_prompts}, b.responses}}, q);
  CHECK((p + q - vector_d::Ones(60)).cwiseAbs().maxCoeff() == 0.0);
  CHECK((p.array() >= 0.5).all());
}

TEST_CASE("instruction task: bad settings and prompts are named", "[sequence]") {
  using prefopt::test::contains;
  CHECK_THROWS_WITH(prefopt::modular_sum_instruction_task(4, 5), contains("modulus = 5"));
  const prefopt::modular_sum_instruction_task task(4, 3);
  const std::vector<index_t> po{0, 1}, ro{0, 1};
  const std::vector<token_id> bad{3}, y{4};
  vector_d r(1);
  CHECK_THROWS_WITH(task.feedback().reward({{po, bad}, {ro, y}}, r),
                    contains("batch.prompts[0] must start with an instruction in [0, 3)"));
}
