#pragma once
/// \file
/// Umbrella header: everything in prefopt that needs only Eigen and the standard library.
/// (`prefopt/io.hpp` adds the parts that need fmt and nlohmann_json.)

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/customization.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/math.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/models/preference/bradley_terry.hpp"
#include "prefopt/models/preference/tabular.hpp"
#include "prefopt/models/preference/validate.hpp"
#include "prefopt/models/reward/tabular.hpp"
#include "prefopt/policies/tabular_softmax.hpp"
