#pragma once
/// \file
/// Umbrella header of the logits kernels (Eigen only): log-sum-exp / log-softmax, token log-probs,
/// entropy, exact KL, sampled KL estimators, the fused single-pass statistics, ragged reductions
/// and the fused linear log-probs. Conventions shared by all: `kernels/options.hpp`; the run-time
/// choice of instruction set (and how to force one): `kernels/dispatch.hpp`.

#include "prefopt/kernels/dispatch.hpp"
#include "prefopt/kernels/entropy.hpp"
#include "prefopt/kernels/kl.hpp"
#include "prefopt/kernels/kl_estimators.hpp"
#include "prefopt/kernels/linear_log_probs.hpp"
#include "prefopt/kernels/linear_options.hpp"
#include "prefopt/kernels/logsumexp.hpp"
#include "prefopt/kernels/options.hpp"
#include "prefopt/kernels/ragged.hpp"
#include "prefopt/kernels/token_log_probs.hpp"
#include "prefopt/kernels/token_stats.hpp"
