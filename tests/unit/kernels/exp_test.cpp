// The packet exponential used by every kernel (detail::exp_flush_op): its error in ulps against a
// long double reference over the whole range the kernels feed it, and its special values.

#include <catch2/catch.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "prefopt/kernels/detail/row_engine.hpp"

namespace {

namespace kd = prefopt::kernels::detail;

/// Evaluates exp0 over `x` through Eigen's packet path (the size is a multiple of every packet
/// width, so no element goes through the scalar tail).
template <class T>
std::vector<T> packet_exp(const std::vector<T>& x) {
  std::vector<T> y(x.size());
  const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> xm(
      x.data(), static_cast<Eigen::Index>(x.size()));
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> ym(y.data(), static_cast<Eigen::Index>(y.size()));
  ym = kd::exp0(xm);
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

}  // namespace

TEST_CASE("float packet exp is within 3 ulp over [threshold, 0] and a little above",
          "[kernels][exp]") {
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
  while (x.size() % 64 != 0) x.push_back(0.0f);
  const auto y = packet_exp(x);
  double worst = 0;
  float worst_x = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double e = ulps(x[i], y[i]);
    if (e > worst) {
      worst = e;
      worst_x = x[i];
    }
  }
  INFO("worst error " << worst << " ulp at x = " << worst_x);
  CHECK(worst <= 3.0);
}

TEST_CASE("packet exp: exact 1 at 0, flush to 0 below the threshold and at -inf, NaN propagates",
          "[kernels][exp]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x(64, 0.0f);
  x[1] = -inf;
  x[2] = -87.34f;  // below log(FLT_MIN): flushed
  x[3] = -1000.0f;
  x[4] = nan;
  x[5] = -87.33f;  // above the threshold: a normal number
  const auto y = packet_exp(x);
  CHECK(y[0] == 1.0f);
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == 0.0f);
  CHECK(y[3] == 0.0f);
  CHECK(std::isnan(y[4]));
  CHECK(y[5] >= std::numeric_limits<float>::min());
  CHECK(ulps(x[5], y[5]) <= 3.0);
  // The scalar path (tails) agrees on the special values.
  const kd::exp_flush_op<float> op;
  CHECK(op(0.0f) == 1.0f);
  CHECK(op(-inf) == 0.0f);
  CHECK(std::isnan(op(nan)));
}

TEST_CASE("double packet exp is within 2 ulp over [threshold, 0]", "[kernels][exp]") {
  std::vector<double> x;
  for (double v = -708.3; v <= 1.0; v += 1.0 / 257.0) x.push_back(v);
  while (x.size() % 64 != 0) x.push_back(0.0);
  const auto y = packet_exp(x);
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, ulps(x[i], y[i]));
  INFO("worst error " << worst << " ulp");
  CHECK(worst <= 2.0);
}
