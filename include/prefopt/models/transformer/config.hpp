#pragma once
/// \file
/// The configuration of prefopt's shipped decoder-only transformer (`models/transformer/
/// transformer.hpp`): sizes, vocabulary, initialisation. Validated once, with the field named.

#include <cstdint>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/types.hpp"

namespace prefopt {

/// Sizes of a decoder-only, pre-norm transformer (GPT-2 layout):
///
///     h_0 = E[x_t] + P[t]
///     h_{l+1} = h_l + Attn_l(LN(h_l)),  then h_{l+1} += MLP_l(LN(h_{l+1}))  (l < num_layers)
///     z_t = W_out LN_f(h_L)_t + b_out
///
/// with causal multi-head self-attention (`num_heads` heads of `d_model / num_heads` dimensions)
/// and a GELU (tanh approximation) MLP of `mlp_hidden` units.
struct transformer_config {
  /// V: token ids are `[0, V)`.
  index_t vocab_size = 0;
  /// The end-of-sequence id, in `[0, V)`.
  token_id eos = 0;
  /// The position table's length: the longest prompt + response the model reads.
  index_t max_length = 0;
  /// D, the width of the residual stream.
  index_t d_model = 64;
  /// L, the number of blocks.
  index_t num_layers = 2;
  /// H; `d_model` must be a multiple of it.
  index_t num_heads = 2;
  /// The MLP's hidden width; 0 means `4 d_model`.
  index_t mlp_hidden = 0;
  /// Standard deviation of the normal initialisation of every weight matrix and embedding (the
  /// residual output projections are scaled by `1 / sqrt(2 L)`, as in GPT-2); biases start at 0,
  /// layer-norm gains at 1.
  double init_scale = 0.02;
  /// Seed of the initialisation.
  std::uint64_t seed = 0;

  /// The MLP width actually used.
  [[nodiscard]] index_t mlp_width() const noexcept {
    return mlp_hidden == 0 ? 4 * d_model : mlp_hidden;
  }
  /// Dimensions per head.
  [[nodiscard]] index_t head_dim() const noexcept {
    return num_heads > 0 ? d_model / num_heads : 0;
  }

  /// Throws `prefopt::invalid_argument` naming `function` and the first bad field.
  void validate(const char* function) const {
    PREFOPT_CHECK(vocab_size >= 2, invalid_argument, function, ": config.vocab_size = ", vocab_size,
                  ", expected >= 2");
    PREFOPT_CHECK(eos >= 0 && eos < vocab_size, invalid_argument, function, ": config.eos = ", eos,
                  ", expected in [0, vocab_size = ", vocab_size, ")");
    PREFOPT_CHECK(max_length >= 1, invalid_argument, function, ": config.max_length = ", max_length,
                  ", expected >= 1");
    PREFOPT_CHECK(d_model >= 1, invalid_argument, function, ": config.d_model = ", d_model,
                  ", expected >= 1");
    PREFOPT_CHECK(num_layers >= 0, invalid_argument, function, ": config.num_layers = ", num_layers,
                  ", expected >= 0");
    PREFOPT_CHECK(num_heads >= 1 && d_model % num_heads == 0, invalid_argument, function,
                  ": config.num_heads = ", num_heads,
                  ", expected >= 1 and dividing d_model = ", d_model);
    PREFOPT_CHECK(mlp_hidden >= 0, invalid_argument, function, ": config.mlp_hidden = ", mlp_hidden,
                  ", expected >= 0 (0 means 4 d_model)");
    PREFOPT_CHECK(init_scale > 0.0 && init_scale < 1e3, invalid_argument, function,
                  ": config.init_scale = ", init_scale, ", expected a finite value > 0");
  }

  friend bool operator==(const transformer_config&, const transformer_config&) = default;
};

}  // namespace prefopt
