#pragma once
/// \file
/// Run histories (`callbacks/history.hpp`) as JSON, written atomically:
///
///     { "status": "completed", "message": "", "metrics": ["gap", ...],
///       "records": [ { "iteration": 0, "seconds": 0.0, "values": {"gap": 0.3, ...},
///                      "policy": [[...], ...], "average_policy": [[...], ...] }, ... ] }
///
/// `policy` / `average_policy` (`[contexts][n]` probabilities) appear when snapshots were on.
/// Non-finite metric values are written as `null` (JSON has no NaN).

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <vector>

#include "prefopt/callbacks/history.hpp"
#include "prefopt/io/atomic_file.hpp"

namespace prefopt::io {

namespace detail {
inline nlohmann::json table_json(const row_matrix_d& t) {
  nlohmann::json rows = nlohmann::json::array();
  for (index_t x = 0; x < t.rows(); ++x) {
    std::vector<double> r(static_cast<std::size_t>(t.cols()));
    for (index_t a = 0; a < t.cols(); ++a) r[static_cast<std::size_t>(a)] = t(x, a);
    rows.push_back(std::move(r));
  }
  return rows;
}
}  // namespace detail

/// The JSON form of a run history.
[[nodiscard]] inline nlohmann::json history_to_json(const run_history& h) {
  nlohmann::json j;
  j["status"] = h.status;
  j["message"] = h.message;
  j["metrics"] = h.metric_names;
  nlohmann::json records = nlohmann::json::array();
  for (std::size_t k = 0; k < h.iterations.size(); ++k) {
    nlohmann::json r;
    r["iteration"] = h.iterations[k];
    r["seconds"] = h.seconds[k];
    nlohmann::json values = nlohmann::json::object();
    for (std::size_t m = 0; m < h.metric_names.size() && m < h.values[k].size(); ++m) {
      const double v = h.values[k][m];
      values[h.metric_names[m]] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    }
    r["values"] = std::move(values);
    if (k < h.policies.size()) r["policy"] = detail::table_json(h.policies[k]);
    if (k < h.average_policies.size()) {
      r["average_policy"] = detail::table_json(h.average_policies[k]);
    }
    records.push_back(std::move(r));
  }
  j["records"] = std::move(records);
  return j;
}

/// Writes a run history as JSON, atomically (`io::write_file_atomically`).
inline void write_history_json(const std::filesystem::path& path, const run_history& h) {
  write_file_atomically(path, history_to_json(h).dump(2) + "\n");
}

}  // namespace prefopt::io
