#pragma once
// A model that only the tests define, with exactly the members a checkpoint needs
// (`CheckpointableModel`): `scalar_type`, a constructor from `transformer_config`, `config()` and
// flat `parameters()`. Its parameter count follows the transformer's block structure so that
// every configuration field changes it; the values are N(0, init_scale^2) from `config.seed`.

#include <Eigen/Core>

#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/models/transformer/config.hpp"

namespace prefopt::test {

template <class T>
class checkpoint_stand_in {
 public:
  using scalar_type = T;

  explicit checkpoint_stand_in(const transformer_config& config) : config_(config) {
    config.validate("checkpoint_stand_in");
    const index_t d = config.d_model, v = config.vocab_size, f = config.mlp_width();
    const index_t per_layer = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
    const index_t n =
        v * d + config.max_length * d + config.num_layers * per_layer + 2 * d + v * d + v;
    theta_.resize(n);
    rng gen(config.seed, /*stream=*/3);
    for (index_t k = 0; k < n; ++k) theta_(k) = static_cast<T>(config.init_scale * gen.normal());
  }

  [[nodiscard]] const transformer_config& config() const noexcept { return config_; }
  [[nodiscard]] Eigen::Ref<vector_t<T>> parameters() { return theta_; }
  [[nodiscard]] Eigen::Ref<const vector_t<T>> parameters() const { return theta_; }

 private:
  transformer_config config_;
  vector_t<T> theta_;
};

}  // namespace prefopt::test
