#pragma once
// prefopt-arena on language models: every trainer on the same sequence task, from one shared
// reference policy (README "Experiment runner", "Sequence tasks").
//
// A config with a "sequence_task" (instead of a "game" or a "task") names the task, the shipped
// transformer's sizes, the supervised fine-tuning budget of the shared reference and the trainers.
// The tasks are one table too, `sequence_task_table` (sequence_tasks.hpp): "quality" (a gold
// reward and raters who favour long answers), "intransitive" (a rock-paper-scissors judge over
// response classes with a known class-level Nash equilibrium, which no reward model explains) and
// "instruction" (instructions, binary feedback and hindsight relabeling, for HIR).
// The runner
// 1. trains the reference once: SFT on best-of-n samples of the untrained model under the task's
//    reward (the gold reward; the intransitive task's quality score), rejection-sampling
//    fine-tuning, cached on disk under a fingerprint of the task, the sizes and the SFT settings
//    (a checkpoint, written atomically; reused by every later run with the same fingerprint);
// 2. runs every trainer from it, for every seed, on the same prompts, through `prefopt::run`;
// 3. every `eval_every` steps evaluates the policy: the task's own metrics (the gold reward; the
//    class-level duality gap and class probabilities), the judge's win rate against the reference,
//    the exact KL to the reference and the response length (each a mean with its 95% interval,
//    from the same sampling seed for every trainer);
// and writes JSON results (the "results" part is a pure function of the config) and a summary
// table. The trainers are one table, `sequence_solver_table`: adding one is one entry. Every
// entry's parameters are read and its trainer built once before anything runs (a bad value is an
// error naming its JSON pointer, before the reference is trained).

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "config.hpp"
#include "evaluation.hpp"
#include "prefopt/core/random.hpp"
#include "prefopt/data/checksum.hpp"
#include "prefopt/data/preference_dataset.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/models/transformer/checkpoint.hpp"
#include "prefopt/models/transformer/transformer.hpp"
#include "prefopt/sequence/evaluation.hpp"
#include "prefopt/solvers/common/run.hpp"
#include "prefopt/solvers/dpo_trainer.hpp"
#include "prefopt/solvers/hir_trainer.hpp"
#include "prefopt/solvers/nash_md_pg.hpp"
#include "prefopt/solvers/online_pair_trainers.hpp"
#include "prefopt/solvers/ppo_trainer.hpp"
#include "prefopt/solvers/reward_modeling.hpp"
#include "prefopt/solvers/sft.hpp"
#include "sequence_tasks.hpp"

namespace prefopt::arena {

/// The shared reference's fine-tuning.
struct reference_settings {
  index_t best_of = 8;  ///< samples per prompt, the best kept
  index_t rounds = 16;  ///< best-of-n rounds over the prompts (demonstrations = rounds x prompts)
  index_t sft_steps = 150;  ///< SFT steps
  double learning_rate = 2e-3;
  index_t batch_size = 32;
};

/// A parsed sequence-task experiment.
struct sequence_experiment {
  std::string name;
  json config;
  std::string task_kind;            ///< a key of `sequence_task_table`
  sequence_task_common task;        ///< the keys every task reads
  sequence_task_builder make_task;  ///< builds the task (its settings read and checked)
  transformer_config model;
  generation_config generation;  ///< sampling of rollouts and evaluations
  reference_settings reference;
  std::filesystem::path cache_dir;
  std::vector<std::uint64_t> seeds;
  index_t iterations = 0;
  index_t eval_every = 0;
  index_t eval_samples = 4;  ///< evaluation responses per prompt
  std::vector<solver_spec> solvers;
};

/// What a trainer's builder needs to run: the task, the shared reference and the evaluation.
struct sequence_runtime {
  const sequence_task& task;
  const sequence_model& reference;
  /// Evaluates `policy` (the runner's evaluation, shared by every trainer).
  std::function<sequence_evaluation(const sequence_model&)> evaluate;
  bool progress = false;  ///< a progress bar per run (verbose, on a terminal)
};

/// What a sequence trainer's builder sees. While the config is validated `run` is null: the
/// builder reads its parameters, builds its trainer (which validates its config) and returns.
struct sequence_context {
  const sequence_experiment& e;
  object_reader& r;
  std::uint64_t seed;
  const sequence_runtime* run;
  std::string label;  ///< "<solver name> (seed <seed>)", above its progress bar
};

/// The outcome of one (trainer, seed) run.
struct sequence_record {
  std::string status;
  std::string message;
  index_t iterations = 0;
  double seconds = 0.0;
  std::vector<index_t> at;
  std::vector<sequence_evaluation> curve;
  std::optional<sequence_model> policy;  ///< the final policy (for the head-to-head win rates)
};

/// The run's callback: evaluates the policy every `eval_every` steps and after the last.
struct sequence_evaluator {
  sequence_context* c;
  sequence_record* rec;
  template <class Step>
  void on_step(const Step& s) {
    const index_t it = s.iteration;
    if (it % c->e.eval_every != 0 && it != c->e.iterations) return;
    rec->at.push_back(it);
    rec->curve.push_back(c->run->evaluate(s.state.policy()));
  }
};

/// Runs `solver` on `problem` through `prefopt::run`, evaluating every `eval_every` steps (and at
/// step 0, the reference).
template <class S, class Problem>
sequence_record run_sequence_solver(const S& solver, const Problem& problem, sequence_context& c) {
  sequence_record rec;
  auto state = solver.init(problem);
  rec.at.push_back(0);
  rec.curve.push_back(c.run->evaluate(state.policy()));
  sequence_evaluator cb{&c, &rec};
  run_settings settings;
  settings.iterations = c.e.iterations;
  settings.show_progress = c.run->progress;
  settings.label = c.label;
  optional_progress bar(settings);
  const auto t0 = std::chrono::steady_clock::now();
  auto result = run_from(solver, problem, std::move(state), run_options{c.e.iterations}, cb, bar);
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rec.status = to_string(result.status);
  rec.message = result.message;
  rec.iterations = result.iterations;
  rec.policy.emplace(result.state.policy());
  return rec;
}

/// `n` pairs from the reference, labelled by the task's judge (one Bernoulli draw per pair).
inline data::preference_dataset judge_labelled_pairs(const sequence_context& c, index_t n) {
  generation_config g = c.e.generation;
  g.samples_per_prompt = 2;
  rng gen(c.seed, /*stream=*/0xa7e);
  data::preference_dataset d;
  const auto prompts = c.run->task.prompts();
  const auto judge = c.run->task.judge();
  while (d.size() < n) {
    const generation_result y = generate(c.run->reference, prompts, g, gen());
    const index_t m = y.size() / 2;
    // first = samples 0, second = samples 1 of each prompt
    std::vector<index_t> fo{0}, so{0};
    std::vector<token_id> ft, st, pt;
    std::vector<index_t> po{0};
    for (index_t i = 0; i < m; ++i) {
      for (const auto t : y.responses().sequence(2 * i)) ft.push_back(t);
      for (const auto t : y.responses().sequence(2 * i + 1)) st.push_back(t);
      for (const auto t : prompts.sequence(i)) pt.push_back(t);
      fo.push_back(static_cast<index_t>(ft.size()));
      so.push_back(static_cast<index_t>(st.size()));
      po.push_back(static_cast<index_t>(pt.size()));
    }
    const sequence_batch first{{po, pt}, {fo, ft}}, second{{po, pt}, {so, st}};
    vector_d p(m);
    judge.preference({first, second}, p);
    for (index_t i = 0; i < m && d.size() < n; ++i) {
      const bool a = gen.bernoulli(p(i));
      const auto ya = first.responses.sequence(i), yb = second.responses.sequence(i);
      d.add(prompts.sequence(i), a ? ya : yb, a ? yb : ya);
    }
  }
  return d;
}

inline optimizer_config read_sequence_optimizer(object_reader& r, double default_lr) {
  optimizer_config o;
  o.kind = optimizer_kind::adam;
  o.learning_rate = r.number("learning_rate", default_lr, 1e-12, 1.0);
  return o;
}

/// The DPO family (offline from judge-labelled reference pairs, or online).
template <class Variant>
sequence_record run_sequence_dpo(sequence_context& c) {
  dpo_trainer_config d;
  d.loss.beta_dpo = c.r.number("beta_dpo", 0.1, 1e-6, 1e6);
  d.loss.length_average = c.r.boolean("length_average", false);
  d.batch_size = c.r.integer("batch_size", 16, 1, 4096);
  d.optimizer = read_sequence_optimizer(c.r, 1e-3);
  d.seed = c.seed;
  const bool online = c.r.string("source", "offline", {"offline", "online"}) == "online";
  const index_t pairs = c.r.integer("dataset_size", 512, 1, max_dataset_pairs);
  c.r.reject_unknown_keys();
  const dpo_trainer<Variant> trainer(d);
  if (c.run == nullptr) return {};
  if (online) {
    const auto judge = c.run->task.judge();
    const auto problem =
        make_sequence_problem(c.run->reference, judge, c.run->task.prompts(), c.e.generation);
    return run_sequence_solver(trainer, problem, c);
  }
  const data::preference_dataset data = judge_labelled_pairs(c, pairs);
  const auto problem = make_sequence_problem(c.run->reference, data, data.prompts().view());
  return run_sequence_solver(trainer, problem, c);
}

/// RLHF: a transformer reward model fitted to judge-labelled reference pairs (Bradley-Terry),
/// then PPO with a transformer critic, both from the reference's backbone.
inline sequence_record run_sequence_ppo(sequence_context& c) {
  ppo_trainer_config p;
  p.rollout_batch_size = c.r.integer("rollout_batch_size", 16, 1, 4096);
  p.ppo_epochs = c.r.integer("ppo_epochs", 2, 1, 100);
  p.num_minibatches = c.r.integer("num_minibatches", 2, 1, p.rollout_batch_size);
  p.kl_coef = c.r.number("kl_coef", 0.05, 0.0, 1e6);
  p.optimizer = read_sequence_optimizer(c.r, 1e-3);
  p.value_optimizer.learning_rate = c.r.number("value_learning_rate", 1e-3, 1e-12, 1.0);
  p.seed = c.seed;
  const index_t pairs = c.r.integer("reward_pairs", 512, 2, max_dataset_pairs);
  const index_t reward_steps = c.r.integer("reward_steps", 100, 1, 1'000'000);
  const double reward_lr = c.r.number("reward_learning_rate", 1e-3, 1e-12, 1.0);
  c.r.reject_unknown_keys();
  const ppo_trainer trainer(p);
  reward_modeling_config rc;
  rc.optimizer.learning_rate = reward_lr;
  rc.seed = c.seed;
  const reward_modeling fit(rc);
  if (c.run == nullptr) return {};
  // Reward modelling.
  const data::preference_dataset data = judge_labelled_pairs(c, pairs);
  const transformer_reward_model<float> rm0(c.run->reference);
  const auto rm_problem = make_reward_modeling_problem(rm0, data);
  auto fitted = run(fit, rm_problem, run_options{reward_steps});
  const auto& rm = fitted.state.model();
  const transformer_critic<float> critic(c.run->reference);
  const auto feedback = make_rlhf_feedback(rm, critic);
  const auto problem =
      make_sequence_problem(c.run->reference, feedback, c.run->task.prompts(), c.e.generation);
  return run_sequence_solver(trainer, problem, c);
}

/// Runs `trainer` online against the task's judge (pairs or opponents from the current policy).
template <class Trainer>
sequence_record run_against_judge(const Trainer& trainer, sequence_context& c) {
  const auto judge = c.run->task.judge();
  const auto problem =
      make_sequence_problem(c.run->reference, judge, c.run->task.prompts(), c.e.generation);
  return run_sequence_solver(trainer, problem, c);
}

/// Nash-MD-PG (or Nash-EMA-PG with "opponent": "ema"): the judge's preference against an
/// opponent from the geometric mixture of policy and reference.
inline sequence_record run_sequence_nash_md_pg(sequence_context& c) {
  nash_md_pg_config n;
  n.beta = c.r.number("beta", n.beta, 0.0, 1e6);
  n.mixture_coef = c.r.number("mixture_coef", n.mixture_coef, 0.0, 1.0);
  n.opponent = c.r.choice<nash_pg_opponent>(
      "opponent", {{"mixture", nash_pg_opponent::mixture}, {"ema", nash_pg_opponent::ema}});
  n.ema_decay = c.r.number("ema_decay", n.ema_decay, 0.0, 0.999999);
  n.kl_credit = c.r.choice<losses::kl_credit>(
      "kl_credit", {{"reward_to_go", losses::kl_credit::reward_to_go},
                    {"same_position", losses::kl_credit::same_position}});
  n.batch_size = c.r.integer("batch_size", n.batch_size, 1, 4096);
  n.optimizer = read_sequence_optimizer(c.r, 1e-3);
  n.seed = c.seed;
  c.r.reject_unknown_keys();
  const nash_md_pg trainer(n);
  if (c.run == nullptr) return {};
  return run_against_judge(trainer, c);
}

/// ONPO (`tau` absent: its game is unregularised) and INPO (`tau`, default 0.1): judged pairs from
/// the current policy, several optimizer steps per iteration.
template <class Trainer>
sequence_record run_sequence_online_pairs(sequence_context& c) {
  typename Trainer::config_type o;
  o.eta = c.r.number("eta", o.eta, 1e-9, 1e6);
  if constexpr (std::is_same_v<Trainer, inpo_trainer>) o.tau = c.r.number("tau", 0.1, 0.0, 1e6);
  o.batch_size = c.r.integer("batch_size", o.batch_size, 1, 4096);
  o.inner_steps = c.r.integer("inner_steps", o.inner_steps, 1, 10'000);
  o.labels = c.r.choice<pair_labels>(
      "labels", {{"expected", pair_labels::expected}, {"sampled", pair_labels::sampled}});
  o.optimizer = read_sequence_optimizer(c.r, 1e-3);
  o.seed = c.seed;
  c.r.reject_unknown_keys();
  const Trainer trainer(o);
  if (c.run == nullptr) return {};
  return run_against_judge(trainer, c);
}

/// HIR on the instruction task: online sampling, relabeling, supervised updates (`mode`:
/// `hindsight`, or the baselines `no_relabeling` and `successes_only`).
inline sequence_record run_sequence_hir(sequence_context& c) {
  if (c.e.task_kind != "instruction") {
    config_error(c.r.child("kind"),
                 "hir needs a sequence_task of kind \"instruction\" (it relabels instructions)");
  }
  hir_trainer_config h;
  h.mode = c.r.choice<hir_mode>("mode", {{"hindsight", hir_mode::hindsight},
                                         {"no_relabeling", hir_mode::no_relabeling},
                                         {"successes_only", hir_mode::successes_only}});
  h.contrast = c.r.choice<hir_contrast>(
      "contrast", {{"two_way", hir_contrast::two_way}, {"k_way", hir_contrast::k_way}});
  h.batch_size = c.r.integer("batch_size", h.batch_size, 1, 4096);
  h.updates_per_round = c.r.integer("updates_per_round", h.updates_per_round, 1, 10'000);
  h.label_smoothing = c.r.number("label_smoothing", h.label_smoothing, 0.0, 0.5);
  h.contrast_weight = c.r.number("contrast_weight", h.contrast_weight, 0.0, 1e6);
  h.entropy_weight = c.r.number("entropy_weight", h.entropy_weight, 0.0, 1e6);
  h.optimizer = read_sequence_optimizer(c.r, 1e-3);
  h.seed = c.seed;
  c.r.reject_unknown_keys();
  const hir_trainer trainer(h);
  if (c.run == nullptr) return {};
  const auto problem = make_sequence_problem(c.run->reference, *c.run->task.instruction(),
                                             c.run->task.prompts(), c.e.generation);
  return run_sequence_solver(trainer, problem, c);
}

struct sequence_solver_entry {
  const char* kind;
  sequence_record (*run)(sequence_context&);
};

/// Every trainer the sequence runner knows: one entry each.
inline const std::vector<sequence_solver_entry>& sequence_solver_table() {
  static const std::vector<sequence_solver_entry> table = {
      {"dpo", run_sequence_dpo<losses::dpo_variant::sigmoid>},
      {"ipo", run_sequence_dpo<losses::dpo_variant::ipo>},
      {"ppo", run_sequence_ppo},
      {"nash_md_pg", run_sequence_nash_md_pg},
      {"onpo", run_sequence_online_pairs<onpo_trainer>},
      {"inpo", run_sequence_online_pairs<inpo_trainer>},
      {"hir", run_sequence_hir},
  };
  return table;
}

inline const sequence_solver_entry& find_sequence_solver(const std::string& kind) {
  for (const auto& entry : sequence_solver_table()) {
    if (kind == entry.kind) return entry;
  }
  PREFOPT_THROW(invalid_argument, "prefopt-arena: unknown sequence solver kind ", kind);
}

inline std::vector<std::string> sequence_solver_kinds() {
  std::vector<std::string> kinds;
  for (const auto& entry : sequence_solver_table()) kinds.emplace_back(entry.kind);
  return kinds;
}

/// Parses a sequence-task config (`j` has "sequence_task"); errors name the JSON pointer.
inline sequence_experiment parse_sequence_config(const json& j, const std::filesystem::path& base) {
  object_reader r(j, "");
  sequence_experiment e;
  e.config = j;
  e.name = r.string("name", "sequence experiment");
  {
    object_reader t(r.at("sequence_task"), "/sequence_task");
    e.task_kind = read_sequence_task(t, e.task, e.make_task);
  }
  {
    object_reader m(r.at("model"), "/model");
    e.model.d_model = m.integer("d_model", 64, 1, 4096);
    e.model.num_layers = m.integer("layers", 2, 0, 64);
    e.model.num_heads = m.integer("heads", 4, 1, 64);
    e.model.mlp_hidden = m.integer("mlp_hidden", 0, 0, 65536);
    e.model.seed =
        static_cast<std::uint64_t>(m.integer("seed", 7, 0, std::numeric_limits<index_t>::max()));
    e.generation.max_new_tokens = m.integer("max_new_tokens", 8, 1, 4096);
    e.generation.temperature = m.number("temperature", 1.0, 1e-3, 1e3);
    m.reject_unknown_keys();
    if (e.model.d_model % e.model.num_heads != 0) {
      config_error("/model/heads", "expected a divisor of d_model");
    }
  }
  e.model.vocab_size = e.task.content_tokens + 1;
  e.model.eos = static_cast<token_id>(e.task.content_tokens);
  e.model.max_length = e.task.prompt_length + e.generation.max_new_tokens;
  if (r.has("reference")) {
    object_reader f(r.at("reference"), "/reference");
    e.reference.best_of = f.integer("best_of", e.reference.best_of, 1, 1024);
    e.reference.rounds = f.integer("rounds", e.reference.rounds, 1, 1024);
    e.reference.sft_steps = f.integer("sft_steps", e.reference.sft_steps, 0, 1'000'000);
    e.reference.learning_rate = f.number("learning_rate", e.reference.learning_rate, 1e-9, 1.0);
    e.reference.batch_size = f.integer("batch_size", e.reference.batch_size, 1, 4096);
    f.reject_unknown_keys();
  }
  // Relative to the working directory (not the config's folder: configs may live in read-only
  // places); `base` resolves nothing else here.
  (void)base;
  e.cache_dir = r.string("cache_dir", ".prefopt-cache");
  e.iterations = r.integer("iterations", 50, 1, 1'000'000);
  e.eval_every = r.integer("eval_every", std::max<index_t>(1, e.iterations / 5), 1, e.iterations);
  e.eval_samples = r.integer("eval_samples", 4, 1, 1024);
  e.seeds = read_seeds(r);
  e.solvers = read_solver_specs(r, sequence_solver_kinds());
  r.reject_unknown_keys();
  e.model.validate("prefopt-arena");
  // Every trainer's parameters, read and checked before anything runs.
  for (const auto& spec : e.solvers) {
    object_reader sr(spec.params, spec.path);
    (void)sr.has("name");
    (void)sr.has("kind");
    sequence_context c{e, sr, e.seeds.front(), nullptr, spec.name};
    try {
      (void)find_sequence_solver(spec.kind).run(c);
    } catch (const invalid_argument& x) {
      config_error(spec.path, x.what());
    }
  }
  return e;
}

/// The fingerprint of the reference: the task, the model sizes, the sampling and SFT settings.
inline std::uint64_t reference_fingerprint(const sequence_experiment& e) {
  data::fnv1a64 h;
  const json key = {
      {"task", e.config.at("sequence_task")},
      {"model", e.config.at("model")},
      {"reference", e.config.contains("reference") ? e.config.at("reference") : json::object()},
      {"format", 1}};
  h.update(std::string_view(key.dump()));
  return h.value();
}

/// The shared reference: loaded from the cache, or trained (SFT on best-of-n demonstrations of
/// the untrained model under the task's demonstration reward) and cached.
inline sequence_model shared_reference(const sequence_experiment& e, const sequence_task& task,
                                       bool verbose) {
  namespace fs = std::filesystem;
  const fs::path path =
      e.cache_dir / fmt::format("reference-{:016x}.ckpt", reference_fingerprint(e));
  if (fs::exists(path)) {
    if (verbose) fmt::print(stderr, "reference: {} (cached)\n", path.string());
    return load_checkpoint<sequence_model>(path);
  }
  const sequence_model initial(e.model);
  demonstration_set all;
  for (index_t round = 0; round < e.reference.rounds; ++round) {
    best_of_n_config bc;
    bc.samples_per_prompt = e.reference.best_of;
    bc.generation = e.generation;
    bc.seed = 1000 + static_cast<std::uint64_t>(round);
    const auto d =
        best_of_n_demonstrations(initial, task.demonstration_reward(), task.prompts(), bc);
    for (index_t i = 0; i < d.size(); ++i) all.add(d.prompts()[i], d.responses()[i]);
  }
  sft_config sc;
  sc.batch_size = e.reference.batch_size;
  sc.schedule = {e.reference.learning_rate, e.reference.sft_steps / 10, e.reference.sft_steps, 0.1};
  const sft solver(sc);
  const auto problem = make_sft_problem(initial, all.batch());
  auto result = run(solver, problem, run_options{e.reference.sft_steps});
  if (result.status != run_status::completed) {
    PREFOPT_THROW(convergence_error, "prefopt-arena: the reference's SFT ",
                  to_string(result.status), ": ", result.message);
  }
  fs::create_directories(e.cache_dir);
  save_checkpoint(path, result.state.policy());
  if (verbose) {
    fmt::print(stderr, "reference: SFT on {} demonstrations, {} steps, cached in {}\n", all.size(),
               e.reference.sft_steps, path.string());
  }
  return result.state.policy();
}

inline json interval_json(const interval_estimate& v) {
  return {{"mean", std::isfinite(v.mean) ? json(v.mean) : json(nullptr)},
          {"lower", std::isfinite(v.lower) ? json(v.lower) : json(nullptr)},
          {"upper", std::isfinite(v.upper) ? json(v.upper) : json(nullptr)}};
}

/// Runs a sequence experiment; returns the results JSON (`{"results", "timing"}`) and prints a
/// summary table to `table`.
inline json run_sequence_experiment(const sequence_experiment& e, bool verbose,
                                    std::string& table) {
  const std::unique_ptr<sequence_task> built = e.make_task();
  const sequence_task& task = *built;
  const auto t0 = std::chrono::steady_clock::now();
  const sequence_model reference = shared_reference(e, task, verbose);
  const double reference_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  generation_config eval_g = e.generation;
  eval_g.samples_per_prompt = e.eval_samples;
  const sequence_runtime runtime{
      task, reference,
      [&](const sequence_model& policy) { return task.evaluate(policy, reference, eval_g); },
      verbose && detail::is_terminal(stderr)};
  const std::vector<std::string> metrics = task.metric_names();
  json solvers = json::array(), timing = json::array();
  std::vector<std::vector<sequence_model>> finals;  // [solver][seed]
  table = fmt::format("{:<20}", "solver");
  for (const auto& m : metrics)
    table += fmt::format(" {:>{}}", m, std::max<std::size_t>(10, m.size()));
  table += "\n";
  for (const auto& spec : e.solvers) {
    const sequence_solver_entry& entry = find_sequence_solver(spec.kind);
    json runs = json::array();
    std::vector<double> final_sum(metrics.size(), 0.0);
    finals.emplace_back();
    for (const std::uint64_t seed : e.seeds) {
      object_reader r(spec.params, spec.path);
      (void)r.has("name");
      (void)r.has("kind");
      sequence_context c{e, r, seed, &runtime, fmt::format("{} (seed {})", spec.name, seed)};
      sequence_record rec = entry.run(c);
      finals.back().push_back(std::move(*rec.policy));
      json curves = {{"iteration", rec.at}};
      for (std::size_t m = 0; m < metrics.size(); ++m) {
        json values = json::array();
        for (const auto& v : rec.curve) values.push_back(interval_json(v.values[m]));
        curves[metrics[m]] = values;
        final_sum[m] += rec.curve.back().values[m].mean;
      }
      runs.push_back({{"seed", seed},
                      {"status", rec.status},
                      {"message", rec.message},
                      {"iterations", rec.iterations},
                      {"curves", curves}});
      timing.push_back({{"solver", spec.name}, {"seed", seed}, {"seconds", rec.seconds}});
      if (verbose) {
        fmt::print(stderr, "{} (seed {}): {} after {} steps, {:.1f} s\n", spec.name, seed,
                   rec.status, rec.iterations, rec.seconds);
      }
    }
    const double n = static_cast<double>(e.seeds.size());
    table += fmt::format("{:<20}", spec.name);
    for (std::size_t m = 0; m < metrics.size(); ++m) {
      table +=
          fmt::format(" {:>{}.4f}", final_sum[m] / n, std::max<std::size_t>(10, metrics[m].size()));
    }
    table += "\n";
    solvers.push_back({{"name", spec.name}, {"kind", spec.kind}, {"runs", runs}});
  }
  // Head to head: the judge's win rate of every trainer's final policy against every other's,
  // seed by seed (the same sampling seed for every pair).
  json head_to_head = json::array();
  const std::size_t k = e.solvers.size();
  std::vector<std::vector<double>> mean_win(k, std::vector<double>(k, 0.5));
  for (std::size_t a = 0; a < k; ++a) {
    for (std::size_t b = a + 1; b < k; ++b) {
      json runs = json::array();
      double sum = 0.0;
      for (std::size_t s = 0; s < e.seeds.size(); ++s) {
        const interval_estimate w =
            win_rate(finals[a][s], finals[b][s], task.judge(), task.prompts(), eval_g, 80);
        runs.push_back({{"seed", e.seeds[s]}, {"win_rate", interval_json(w)}});
        sum += w.mean;
      }
      mean_win[a][b] = sum / static_cast<double>(e.seeds.size());
      mean_win[b][a] = 1.0 - mean_win[a][b];
      head_to_head.push_back(
          {{"first", e.solvers[a].name}, {"second", e.solvers[b].name}, {"runs", runs}});
    }
  }
  if (k > 1) {
    table += fmt::format(
        "\nhead to head: P(row beats column) under the judge, mean over seeds\n{:<20}", "");
    for (const auto& s : e.solvers) table += fmt::format(" {:>10.10}", s.name);
    table += "\n";
    for (std::size_t a = 0; a < k; ++a) {
      table += fmt::format("{:<20}", e.solvers[a].name);
      for (std::size_t b = 0; b < k; ++b) {
        table += a == b ? fmt::format(" {:>10}", "-") : fmt::format(" {:>10.4f}", mean_win[a][b]);
      }
      table += "\n";
    }
  }
  json results = {{"experiment", e.name},
                  {"config", e.config},
                  {"task", e.task_kind},
                  {"reference_fingerprint", fmt::format("{:016x}", reference_fingerprint(e))},
                  {"metrics", metrics},
                  {"solvers", solvers},
                  {"head_to_head", head_to_head}};
  return {{"results", results},
          {"timing", {{"reference_seconds", reference_seconds}, {"runs", timing}}}};
}

}  // namespace prefopt::arena
