// DPO against length-averaged DPO on a token-level task with length-biased preferences.
//
// The policy is a token_softmax_policy (a position-dependent softmax over K content tokens and
// eos); the judge is Bradley-Terry on r(y) = sum of token qualities + length_bonus * #content
// tokens, so it prefers longer responses at equal quality. For a sweep of beta, both variants
// train on the same offline dataset drawn from mu; the program prints, for each final policy, the
// exact KL(pi, mu), expected length and expected gold reward, then compares the expected lengths
// at matched KL (the averaged curve interpolated at DPO's KLs): the length/score trade-off of
// Grinsztajn et al. 2024 (arXiv 2406.19188).
//
// Usage: 03_token_length_bias [--output results.json] [--steps N] [--seed S]
// The JSON (kind "token_length_sweep") is what benchmarks/plot_results.py turns into the
// length_tradeoff_token_level figure.

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "prefopt/diagnostics/length_bias.hpp"
#include "prefopt/prefopt.hpp"

namespace {

/// Parses a whole decimal integer in [lo, hi]; false on anything else.
bool parse_integer(const char* text, long long lo, long long hi, long long& out) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) return false;
  out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  prefopt::length_bias_sweep_config config;
  std::string output;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    long long v = 0;
    if (i + 1 < argc && a == "--output") {
      output = argv[++i];
    } else if (i + 1 < argc && a == "--steps" && parse_integer(argv[i + 1], 1, 100000000, v)) {
      config.steps = static_cast<long>(v);
      ++i;
    } else if (i + 1 < argc && a == "--seed" &&
               parse_integer(argv[i + 1], 0, std::numeric_limits<long long>::max(), v)) {
      config.task.seed = static_cast<std::uint64_t>(v);
      ++i;
    } else {
      std::fprintf(stderr,
                   "%s: bad argument '%s'\nusage: %s [--output results.json] [--steps N >= 1] "
                   "[--seed S >= 0]\n",
                   argv[0], a.c_str(), argv[0]);
      return 2;
    }
  }
  try {
    const auto result = prefopt::run_length_bias_sweep(config);
    std::printf(
        "token-level task: K = %lld content tokens, L = %lld, mu stops w.p. %.2f, "
        "length bonus %.2f; mu: E|y| = %.3f, E r = %.3f\n",
        static_cast<long long>(config.task.vocab_size),
        static_cast<long long>(config.task.max_length), config.task.stop_probability,
        config.task.length_bonus, result.reference_length, result.reference_gold);
    std::printf("%-22s %8s %10s %10s %10s\n", "variant", "beta", "KL(pi,mu)", "E|y|", "E r(y)");
    for (const auto& p : result.points) {
      std::printf("%-22s %8.3f %10.4f %10.4f %10.4f\n",
                  p.length_average ? "DPO (length-averaged)" : "DPO", p.beta, p.kl, p.length,
                  p.gold);
    }
    std::printf("\nat matched KL(pi, mu): expected length of DPO vs length-averaged DPO\n");
    for (const auto& m : result.matched) {
      std::printf("  KL %.4f: DPO %.4f, averaged %.4f (difference %+.4f)\n", m.kl, m.length_dpo,
                  m.length_averaged, m.length_dpo - m.length_averaged);
    }
    if (!output.empty()) {
      nlohmann::json doc;
      doc["kind"] = "token_length_sweep";
      doc["task"] = {{"vocab_size", config.task.vocab_size},
                     {"max_length", config.task.max_length},
                     {"stop_probability", config.task.stop_probability},
                     {"length_bonus", config.task.length_bonus},
                     {"seed", config.task.seed}};
      doc["steps"] = config.steps;
      doc["reference"] = {{"expected_length", result.reference_length},
                          {"gold_reward", result.reference_gold}};
      for (const auto& p : result.points) {
        doc["points"].push_back({{"length_average", p.length_average},
                                 {"beta", p.beta},
                                 {"kl", p.kl},
                                 {"expected_length", p.length},
                                 {"gold_reward", p.gold}});
      }
      for (const auto& m : result.matched) {
        doc["matched"].push_back(
            {{"kl", m.kl}, {"length_dpo", m.length_dpo}, {"length_averaged", m.length_averaged}});
      }
      const std::string tmp = output + ".tmp";
      {
        std::ofstream f(tmp);
        f << doc.dump(2) << '\n';
        if (!f) {
          std::fprintf(stderr, "cannot write %s\n", tmp.c_str());
          return 1;
        }
      }
      if (std::rename(tmp.c_str(), output.c_str()) != 0) {
        std::fprintf(stderr, "cannot rename %s to %s\n", tmp.c_str(), output.c_str());
        return 1;
      }
      std::printf("wrote %s\n", output.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
