// A sequence model without incremental decoding (start_decoding, next_logits, append) is rejected,
// naming it.
#include "prefopt/core/concepts.hpp"

struct user_model {
  using scalar_type = float;
  struct decode_state {};
  prefopt::vector_f theta = prefopt::vector_f::Zero(3);
  [[nodiscard]] prefopt::index_t vocab_size() const { return 4; }
  [[nodiscard]] prefopt::token_id eos() const { return 3; }
  [[nodiscard]] prefopt::index_t num_parameters() const { return theta.size(); }
  Eigen::Ref<prefopt::vector_f> parameters() { return theta; }
  [[nodiscard]] Eigen::Ref<const prefopt::vector_f> parameters() const { return theta; }
  void logits(const prefopt::sequence_batch&, Eigen::Ref<prefopt::row_matrix_f>) const {}
  void accumulate_logits_gradient(const prefopt::sequence_batch&,
                                  Eigen::Ref<const prefopt::row_matrix_f>,
                                  Eigen::Ref<prefopt::vector_f>) const {}
  [[nodiscard]] decode_state start_decoding(prefopt::ragged_view<const prefopt::token_id>) const {
    return {};
  }
#if !defined(PREFOPT_COMPILE_FAIL)
  void next_logits(decode_state&, std::span<const prefopt::index_t>,
                   Eigen::Ref<prefopt::row_matrix_f>) const {}
#endif
  void append(decode_state&, std::span<const prefopt::index_t>,
              std::span<const prefopt::token_id>) const {}
};

static_assert(prefopt::check_sequence_model<user_model>());

int main() {
  return 0;
}
