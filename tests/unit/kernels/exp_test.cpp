// The vector exponential every kernel uses, on every instruction-set path this machine runs
// (kernels/dispatch.hpp) and at both accuracies: its error against a long double reference over
// the whole range the kernels feed it, and its special values.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "isa_paths.hpp"
#include "prefopt/kernels/detail/row_math.hpp"
#include "prefopt/kernels/dispatch.hpp"

namespace {

namespace kd = prefopt::kernels::detail;
namespace pk = prefopt::kernels;

/// exp over `x` through the path's vector code (odd sizes exercise the padded last packet).
template <class T>
std::vector<T> path_exp(const std::vector<T>& x, pk::isa path, pk::exp_accuracy acc) {
  std::vector<T> y(x.size());
  kd::tiles_for<T>(path, acc).exp(x.data(), y.data(), static_cast<prefopt::index_t>(x.size()));
  return y;
}

/// |y - exp(x)| in units of the last place of exp(x) (as a T).
template <class T>
double ulps(T x, T y) {
  const long double ref = std::exp(static_cast<long double>(x));
  const auto r = static_cast<T>(ref);
  const T ulp = std::nextafter(r, std::numeric_limits<T>::infinity()) - r;
  return static_cast<double>(std::fabs(static_cast<long double>(y) - ref) /
                             static_cast<long double>(ulp));
}

/// |y / exp(x) - 1|.
double rel_err(float x, float y) {
  const long double ref = std::exp(static_cast<long double>(x));
  return static_cast<double>(std::fabs(static_cast<long double>(y) / ref - 1));
}

std::vector<float> exp_test_args() {
  // Every representable spacing matters near 0 (where the kernels' largest weights are); sweep
  // [-87.3, 2] with a step that is not a multiple of ln 2 so every reduced argument r is visited.
  std::vector<float> x;
  for (double v = -87.3; v <= 2.0; v += 1.0 / 4099.0) x.push_back(static_cast<float>(v));
  // Arguments straddling the reduction boundaries n ln2 +- ln2/2.
  for (int n = -125; n <= 2; ++n) {
    const float mid = static_cast<float>((n + 0.5) * std::log(2.0));
    float lo = mid;
    float hi = mid;
    for (int k = 0; k < 8; ++k) {
      lo = std::nextafter(lo, -1e9f);
      hi = std::nextafter(hi, 1e9f);
      x.push_back(lo);
      x.push_back(hi);
    }
  }
  x.push_back(0.25f);  // an odd count: the last packet is partial
  return x;
}

}  // namespace

TEST_CASE("float exp is within 3 ulp (standard) on every path", "[kernels][exp][isa]") {
  const auto x = exp_test_args();
  for (auto path : prefopt::test::supported_paths()) {
    const auto y = path_exp(x, path, pk::exp_accuracy::standard);
    double worst = 0;
    float worst_x = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double e = ulps(x[i], y[i]);
      if (e > worst) {
        worst = e;
        worst_x = x[i];
      }
    }
    INFO("path " << pk::isa_name(path) << ": worst error " << worst << " ulp at x = " << worst_x);
    CHECK(worst <= 3.0);
  }
}

TEST_CASE("fast float exp is within a relative 3.5e-6 (about 60 u) on every path",
          "[kernels][exp][isa]") {
  const auto x = exp_test_args();
  for (auto path : prefopt::test::supported_paths()) {
    const auto y = path_exp(x, path, pk::exp_accuracy::fast);
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, rel_err(x[i], y[i]));
    INFO("path " << pk::isa_name(path) << ": worst relative error " << worst);
    CHECK(worst <= 3.5e-6);
    CHECK(worst > 1e-7);  // it is the cheaper polynomial, not the standard one
  }
}

TEST_CASE("exp: exact 1 at 0, flush to 0 below the threshold and at -inf, NaN propagates",
          "[kernels][exp][isa]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (auto path : prefopt::test::supported_paths()) {
    for (auto acc : {pk::exp_accuracy::standard, pk::exp_accuracy::fast}) {
      std::vector<float> x(37, 0.0f);
      x[1] = -inf;
      x[2] = -87.34f;  // below log(FLT_MIN): flushed
      x[3] = -1000.0f;
      x[4] = nan;
      x[5] = -87.33f;  // above the threshold: a normal number
      x[36] = nan;     // in the padded last packet
      const auto y = path_exp(x, path, acc);
      INFO("path " << pk::isa_name(path));
      CHECK(y[0] == 1.0f);
      CHECK(y[1] == 0.0f);
      CHECK(y[2] == 0.0f);
      CHECK(y[3] == 0.0f);
      CHECK(std::isnan(y[4]));
      CHECK(y[5] >= std::numeric_limits<float>::min());
      CHECK(std::isnan(y[36]));
    }
  }
}

TEST_CASE("double exp is within 2 ulp over [threshold, 0]", "[kernels][exp]") {
  std::vector<double> x;
  for (double v = -708.3; v <= 1.0; v += 1.0 / 257.0) x.push_back(v);
  x.push_back(-std::numeric_limits<double>::infinity());
  const auto y = path_exp(x, pk::isa::baseline, pk::exp_accuracy::standard);
  double worst = 0;
  for (std::size_t i = 0; i + 1 < x.size(); ++i) worst = std::max(worst, ulps(x[i], y[i]));
  INFO("worst error " << worst << " ulp");
  CHECK(worst <= 2.0);
  CHECK(y.back() == 0.0);
}
