#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "prefopt/callbacks/early_stop.hpp"
#include "prefopt/callbacks/history.hpp"
#include "prefopt/callbacks/metric_tracker.hpp"
#include "prefopt/callbacks/metrics.hpp"
#include "prefopt/callbacks/progress.hpp"
#include "prefopt/callbacks/timer.hpp"
#include "prefopt/games/catalog.hpp"
#include "prefopt/io/history_json.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/nash/mirror_descent.hpp"
#include "prefopt/solvers/nash/onpo.hpp"

using namespace prefopt;

namespace {
preference_game rps_game() {
  vector_d mu(3);
  mu << 0.7, 0.2, 0.1;
  return rock_paper_scissors_game(mu, 0.5);
}
}  // namespace

TEST_CASE("early_stop stops the run once the duality gap reaches the target") {
  const auto game = rps_game();
  early_stop stop(gap_metric{}, 1e-6, 5);
  const auto result = run(nash_md<>{}, game, {.max_iterations = 100000}, stop);
  CHECK(result.status == run_status::stopped);
  CHECK(stop.reached());
  CHECK(stop.value() <= 1e-6);
  CHECK(result.iterations % 5 == 0);
  CHECK(duality_gap(game, result.state.policy()) <= 1e-6);
  CHECK(result.iterations < 100000);
}

TEST_CASE("metric_tracker records the metric every k steps, at the start and at the end") {
  const auto game = rps_game();
  metric_tracker tracker(gap_metric{}, 10);
  const auto result = run(nash_md<>{}, game, {.max_iterations = 35}, tracker);
  const std::vector<prefopt::index_t> expected = {0, 10, 20, 30, 35};
  CHECK(tracker.iterations() == expected);
  CHECK(tracker.values().back() == Approx(duality_gap(game, result.state.policy())).margin(1e-15));
  CHECK(tracker.values().front() == Approx(duality_gap(game, game.reference())).margin(1e-15));
}

TEST_CASE("timer measures the run and stops it at its limit") {
  timer measure;
  const auto a = run(nash_md<>{}, rps_game(), {.max_iterations = 50}, measure);
  CHECK(a.status == run_status::completed);
  CHECK(measure.seconds() > 0.0);
  CHECK_FALSE(measure.expired());
  timer limit(1e-9);
  const auto b = run(nash_md<>{}, rps_game(), {.max_iterations = 1000}, limit);
  CHECK(b.status == run_status::stopped);
  CHECK(b.iterations == 1);
  CHECK(limit.expired());
  CHECK_THROWS_AS(timer(0.0), invalid_argument);
}

TEST_CASE("history_recorder writes a JSON history atomically that reads back") {
  const auto game = rps_game();
  history_recorder recorder(25, /*snapshots=*/true, gap_metric{}, average_gap_metric{0.0});
  const auto result = run(onpo<>{}, game, {.max_iterations = 100}, recorder);
  const auto& h = recorder.history();
  CHECK(h.iterations.size() == 5);
  CHECK(h.metric_names == std::vector<std::string>{"gap", "average_gap"});
  CHECK(h.status == "completed");
  const auto path = std::filesystem::temp_directory_path() / "prefopt_history_test.json";
  io::write_history_json(path, h);
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  std::filesystem::remove(path);
  CHECK(j["status"] == "completed");
  CHECK(j["records"].size() == 5);
  CHECK(j["records"][4]["iteration"] == 100);
  CHECK(j["records"][4]["values"]["gap"].get<double>() ==
        Approx(duality_gap(game, result.state.policy())).margin(1e-15));
  CHECK(j["records"][4]["policy"][0].size() == 3);
  CHECK(j["records"][4]["average_policy"][0][0].get<double>() ==
        Approx(result.state.average_probabilities()(0, 0)).margin(1e-15));
}

namespace {
/// A metric group for the test: the gaps of the current and average iterates, computed together.
struct both_gaps {
  [[nodiscard]] std::vector<std::string> names() const { return {"current", "average"}; }
  template <class State>
  void evaluate(const preference_game& game, const State& state, std::vector<double>& out) const {
    out.push_back(duality_gap(game, state.policy(), 0.0));
    out.push_back(duality_gap(game, state.average_probabilities(), 0.0));
  }
};
static_assert(MetricGroup<both_gaps>);
static_assert(!MetricGroup<gap_metric>);
}  // namespace

TEST_CASE("history_recorder records a metric group's values in order, beside single metrics") {
  const auto game = rps_game();
  history_recorder recorder(5, /*snapshots=*/false, gap_metric{0.0}, both_gaps{},
                            average_gap_metric{0.0});
  // From the reference (not the uniform equilibrium), so both iterates have positive gaps.
  const onpo<> solver(constant_step(0.5), {}, initial_policy::reference());
  const auto result = run(solver, game, {.max_iterations = 10}, recorder);
  const auto& h = recorder.history();
  CHECK(h.metric_names == std::vector<std::string>{"gap", "current", "average", "average_gap"});
  REQUIRE(h.values.size() == 3);
  const auto& last = h.values.back();
  REQUIRE(last.size() == 4);
  const double current = duality_gap(game, result.state.policy(), 0.0);
  const double average = duality_gap(game, result.state.average_probabilities(), 0.0);
  CHECK(current != average);  // the two columns can be told apart
  CHECK(last[0] == current);
  CHECK(last[1] == current);
  CHECK(last[2] == average);
  CHECK(last[3] == average);
}

TEST_CASE("progress prints plain lines with the metric when not on a terminal") {
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  {
    progress bar(10, gap_metric{}, out);
    const auto result = run(nash_md<>{}, rps_game(), {.max_iterations = 20}, bar);
    CHECK(result.status == run_status::completed);
  }
  std::rewind(out);
  std::string text;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, out) != nullptr) text += buffer;
  std::fclose(out);
  CHECK(text.find("step 10/20") != std::string::npos);
  CHECK(text.find("step 20/20") != std::string::npos);
  CHECK(text.find("gap=") != std::string::npos);
  CHECK(text.find("run completed after 20 steps") != std::string::npos);
  CHECK(text.find('\r') == std::string::npos);
}

TEST_CASE("progress draws a bar when asked to (terminal mode)") {
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  {
    progress bar(5, detail::no_metric{}, out, /*bar=*/1);
    (void)run(nash_md<>{}, rps_game(), {.max_iterations = 10}, bar);
  }
  std::rewind(out);
  std::string text;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, out) != nullptr) text += buffer;
  std::fclose(out);
  CHECK(text.find("\r[###") != std::string::npos);
  CHECK(text.find("100%") != std::string::npos);
}
