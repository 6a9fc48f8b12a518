// The derived quantities and sequence_policy, called with a model that lacks
// accumulate_logits_gradient, fail with check_sequence_model's sentence naming it.
#include "prefopt/sequence/derived.hpp"

struct user_model {
  using scalar_type = float;
  struct decode_state {};
  prefopt::vector_f theta = prefopt::vector_f::Zero(3);
  [[nodiscard]] prefopt::index_t vocab_size() const { return 4; }
  [[nodiscard]] prefopt::token_id eos() const { return 3; }
  [[nodiscard]] prefopt::index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<prefopt::vector_f> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_f> parameters() const { return theta; }
  void logits(const prefopt::sequence_batch&, Eigen::Ref<prefopt::row_matrix_f> out) const {
    out.setZero();
  }
#if !defined(PREFOPT_COMPILE_FAIL)
  void accumulate_logits_gradient(const prefopt::sequence_batch&,
                                  Eigen::Ref<const prefopt::row_matrix_f>,
                                  Eigen::Ref<prefopt::vector_f>) const {}
#endif
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const prefopt::token_id>) const {
    return {};
  }
  void next_logits(decode_state&, std::span<const prefopt::index_t>,
                   Eigen::Ref<prefopt::row_matrix_f> out) const {
    out.setZero();
  }
  void append(decode_state&, std::span<const prefopt::index_t>,
              std::span<const prefopt::token_id>) const {}
};

int main() {
  user_model model;
  const prefopt::sequence_batch batch{};
  prefopt::vector_d s(0);
  prefopt::sequence_log_probs(model, batch, s);
  const prefopt::sequence_policy policy(model);
  (void)policy;
  return 0;
}
