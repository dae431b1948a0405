r"""SCOPE-RL 0.2.1's whole OPE pipeline (FQE, 7 continuous estimators, OPS metrics), timed.

    /tmp/venv-scope/bin/python benchmarks/scope_rl_pipeline.py --dir=DIR [--num_datasets=K]

DIR holds what our side exports: datasets.npz (obs/action/reward/terminated/truncated/
behavior_log_prob, [S, N, T, ...]), policies.npz (p{p}_kernel{i}, p{p}_bias{i},
p{p}_obs_mean, p{p}_obs_std of P deterministic MLP candidates) and meta.json (γ, kernel
bandwidth, FQE settings, true values, safety threshold, max_topk, seed). For each dataset s
the script times three phases with time.perf_counter and writes DIR/scope_rl_pipeline.json
(per-dataset seconds, estimates and OPS metrics, totals, versions):
  fqe         CreateOPEInput(env=None, fqe model_args from meta, device="cpu:0")
              .obtain_whole_inputs(..., require_value_prediction=True, q_function_method="fqe"):
              one d3rlpy FQE fit per candidate, then SCOPE's evaluation actions, Q̂(s,a),
              Q̂(s,π(s)) and initial-state values.
  estimators  OffPolicyEvaluation([DM, TIS, PDIS, DR, SNTIS, SNPDIS, SNDR] from
              scope_rl.ope.continuous, gaussian kernel, meta bandwidth).estimate_policy_value.
  selection   OffPolicySelection.select_by_policy_value(return_metrics, return_true_values,
              safety_threshold) and .obtain_topk_policy_value_selected_by_standard_ope.
Runs in SCOPE-RL's virtualenv (scope-rl 0.2.1 with d3rlpy 2.8.1, torch CPU): numpy, torch,
d3rlpy, scope_rl and the standard library only, no jax and nothing of this project.

Inputs to SCOPE, as in scope_rl_compare.py: the N trajectories of T steps flattened to N·T
rows; pscore = exp(behavior_log_prob) (the joint density) in column 0 and ones in the
other columns (SCOPE multiplies the columns); done = True at each trajectory's last step;
terminal all False (early termination is refused: SCOPE needs every trajectory to last T
steps); on_policy_policy_value = [true value] per candidate (env=None leaves it None).

Candidates: `ContinuousEvalHead(base_policy=FixedPolicy(...), name="cand{p}")`. SCOPE's head
must wrap a d3rlpy QLearningAlgoBase (it checks isinstance) and forwards `.predict` and
`.impl` to it; d3rlpy 2.8.1's FQE asserts `algo.impl` and calls
`algo.impl.predict_best_action(next_obs)` on torch tensors at every gradient step, and
SCOPE calls `head.predict(states)` (numpy, through d3rlpy's own QLearningAlgoBase.predict →
impl.predict_best_action). So FixedPolicy is a real, minimal QLearningAlgoBase whose impl
(a QLearningAlgoImplBase) evaluates the exported MLP in torch float32 —
tanh(MLP(clip((x − mean)/std, ±obs_clip))[:, :a]) — and refuses training and value
prediction; no d3rlpy algorithm's own networks or scalers are involved, no duck typing.

Where this departs from calling SCOPE with its defaults (no installed file is patched):
  * FQE steps: SCOPE's build_and_fit_FQE calls `fqe.fit(dataset, n_steps=n_steps)`, and
    d3rlpy 2.x runs n_steps // n_steps_per_epoch epochs with n_steps_per_epoch defaulting to
    10000, so n_steps < 10000 trains nothing and other values round down to a multiple of
    10000. CreateOPEInputExactSteps overrides build_and_fit_FQE (k_fold = 1 only) to build
    the same FQE (FQEConfig(gamma, **model_args["fqe"]), d3rlpy.ope.FQE(algo=head)) and fit
    it as one epoch of exactly n_steps steps, with a NoopAdapterFactory logger (so no
    d3rlpy_logs/ in the cwd, no model/params files) and no progress bar. The JSON records
    each FQE's grad_step and batch size. batch_size, learning_rate, encoder and Q-function
    factories go through model_args["fqe"] into FQEConfig; the rest is d3rlpy's default
    (Adam, n_critics = 1, target_update_interval = 100, no observation/reward scaler).
    d3rlpy's structlog lines ("dataset info", ...) are redirected to stderr.
  * FQE learns from SCOPE's MDPDataset(terminals=done): the time-limit step is a terminal,
    so FQE never bootstraps past step T−1 (the finite-horizon target).
  * OffPolicyEvaluation._register_logged_dataset stores `logged_dataset["action"].astype(int)`
    for continuous actions too (ope.py), which truncates actions in (−1, 1) to 0 and breaks
    every kernel weight. OffPolicyEvaluationFloatActions re-registers the float actions after
    SCOPE's own registration (--keep_int_cast keeps SCOPE's behaviour, for reference).
  * OffPolicyEvaluation(disable_reward_after_done=True), the default, multiplies rewards by
    cumprod(1 − done), which also zeroes the reward *at* the done step, i.e. the last step
    of every trajectory here (and the behaviour value OPS uses). With no early termination
    there is nothing after done to hide, so this passes disable_reward_after_done=False.
  * SCOPE's Gaussian kernel keeps the 1-D constant for any action size, and SN estimators
    divide by (mean w + 1e-10): see scope_rl_compare.py's caveats. No weight clipping.
  * FQE is seeded with d3rlpy.seed(meta seed + s) before each dataset; random_state only
    seeds SCOPE's (unused here) initial-state resampling.
Timings: wall clock on CPU (torch.get_num_threads() threads, recorded; --threads sets it);
"total" is the three phases plus building the logged dataset and candidate heads. SCOPE's
tqdm bars go to stderr and are included in the timed phases, as a SCOPE user gets them.
Before the timed loop, an untimed warm-up runs the whole pipeline on dataset 0 with 2 FQE
steps (warmup_seconds in the JSON; --no_warmup skips it), so one-off costs (torch's lazy
imports on the first optimizer/backward, ~2 s here) do not land in dataset 0's FQE time.
Each FQE step is a batch of tiny MLP forward/backward passes, so FQE time is dominated by
per-step PyTorch/d3rlpy overhead and is sensitive to other load on the CPU cores: on a
busy 2-core machine torch's default 2 threads made it ~50-100x slower than --threads=1.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time

import d3rlpy
import numpy as np
import scope_rl
import torch
from d3rlpy.algos.qlearning.base import QLearningAlgoBase, QLearningAlgoImplBase
from d3rlpy.base import LearnableConfig
from d3rlpy.constants import ActionSpace
from d3rlpy.logging import NoopAdapterFactory
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.models.q_functions import MeanQFunctionFactory
from d3rlpy.ope import FQE, FQEConfig
from d3rlpy.torch_utility import Modules
from scope_rl.ope import CreateOPEInput, OffPolicyEvaluation, OffPolicySelection
from scope_rl.ope import continuous as ope
from scope_rl.policy import ContinuousEvalHead

ESTIMATORS = [ope.DirectMethod, ope.TrajectoryWiseImportanceSampling,
              ope.PerDecisionImportanceSampling, ope.DoublyRobust, ope.SelfNormalizedTIS,
              ope.SelfNormalizedPDIS, ope.SelfNormalizedDR]
ACTIVATIONS = {"swish": torch.nn.functional.silu, "silu": torch.nn.functional.silu,
               "relu": torch.relu, "tanh": torch.tanh}
PHASES = ("fqe", "estimators", "selection", "total")


def log(msg):
  print(msg, file=sys.stderr, flush=True)


class CandidateMLP(torch.nn.Module):
  """Exported deterministic candidate: tanh(MLP(clip((x − mean)/std, ±clip))[:, :a])."""

  def __init__(self, kernels, biases, obs_mean, obs_std, activation, action_size, obs_clip):
    super().__init__()
    f32 = lambda v: torch.as_tensor(np.asarray(v, np.float32))
    self.kernels = torch.nn.ParameterList(
        [torch.nn.Parameter(f32(k), requires_grad=False) for k in kernels])
    self.biases = torch.nn.ParameterList(
        [torch.nn.Parameter(f32(b), requires_grad=False) for b in biases])
    self.register_buffer("obs_mean", f32(obs_mean))
    self.register_buffer("obs_std", f32(obs_std))
    if activation not in ACTIVATIONS:
      raise SystemExit(f"meta.json: activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
    self.activation = ACTIVATIONS[activation]
    self.action_size = action_size
    self.obs_clip = float(obs_clip)

  @torch.no_grad()
  def forward(self, x):
    h = torch.clamp((x - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
    for i, (k, b) in enumerate(zip(self.kernels, self.biases)):
      h = h @ k + b
      if i < len(self.kernels) - 1:
        h = self.activation(h)
    return torch.tanh(h[:, :self.action_size])


@dataclasses.dataclass(frozen=True)
class FixedPolicyModules(Modules):
  policy: torch.nn.Module


class FixedPolicyImpl(QLearningAlgoImplBase):
  """d3rlpy impl that only acts: predict_best_action = sample_action = the fixed MLP."""

  def inner_predict_best_action(self, x):
    return self._modules.policy(x)

  def inner_sample_action(self, x):
    return self._modules.policy(x)

  def inner_predict_value(self, x, action):
    raise NotImplementedError("FixedPolicy has no Q-function")

  def inner_update(self, batch, grad_step):
    raise NotImplementedError("FixedPolicy is not trainable")


class FixedPolicy(QLearningAlgoBase):
  """A d3rlpy QLearningAlgoBase around a fixed torch policy (already built, not trainable)."""

  def __init__(self, net, observation_size, device="cpu:0"):
    impl = FixedPolicyImpl(observation_shape=(observation_size,), action_size=net.action_size,
                           modules=FixedPolicyModules(policy=net.to(device)), device=device)
    super().__init__(config=LearnableConfig(), device=device, enable_ddp=False, impl=impl)

  def inner_create_impl(self, observation_shape, action_size):
    raise NotImplementedError("FixedPolicy is built at construction")

  def get_action_type(self):
    return ActionSpace.CONTINUOUS


class CreateOPEInputExactSteps(CreateOPEInput):
  """CreateOPEInput whose FQE fit runs exactly n_steps gradient steps, logging nowhere."""

  def build_and_fit_FQE(self, evaluation_policy, k_fold=1, n_steps=10000):
    if k_fold != 1:
      raise NotImplementedError("only k_fold = 1")
    if evaluation_policy.name in self.fqe:
      return
    fqe = FQE(algo=evaluation_policy, config=FQEConfig(gamma=self.gamma, **self.model_args["fqe"]),
              device=self.device)
    fqe.fit(self.mdp_dataset, n_steps=n_steps, n_steps_per_epoch=n_steps,
            logger_adapter=NoopAdapterFactory(), show_progress=False, save_interval=1)
    self.fqe[evaluation_policy.name] = [fqe]


class OffPolicyEvaluationFloatActions(OffPolicyEvaluation):
  """OffPolicyEvaluation that keeps the logged continuous actions as floats (no astype(int))."""

  def _register_logged_dataset(self, *args, **kwargs):
    super()._register_logged_dataset(*args, **kwargs)
    if self.action_type == "continuous":
      self.input_dict_["action"] = self.logged_dataset["action"]


def load_inputs(directory):
  with np.load(os.path.join(directory, "datasets.npz")) as f:
    data = {k: f[k] for k in f.files}
  with np.load(os.path.join(directory, "policies.npz")) as f:
    policies = {k: f[k] for k in f.files}
  with open(os.path.join(directory, "meta.json")) as f:
    meta = json.load(f)
  if np.any(data["terminated"]):
    raise SystemExit(f"{directory}/datasets.npz: terminated has {int(data['terminated'].sum())} "
                     "True entries; SCOPE-RL needs every trajectory to last T steps (no early "
                     "termination), so this pipeline refuses it")
  if np.any(data["truncated"][..., :-1]):
    raise SystemExit(f"{directory}/datasets.npz: truncated before the last step")
  return data, policies, meta


def logged_dataset(data, s):
  """SCOPE's LoggedDataset dict for dataset s (continuous, N trajectories × T steps)."""
  _, n, t, d = data["obs"].shape
  a = data["action"].shape[-1]
  pscore = np.ones((n * t, a))
  pscore[:, 0] = np.exp(data["behavior_log_prob"][s].astype(np.float64)).reshape(n * t)
  done = np.zeros((n, t), bool)
  done[:, -1] = True
  return {
      "size": n * t, "n_trajectories": n, "step_per_trajectory": t, "action_type": "continuous",
      "n_actions": None, "action_dim": a, "action_keys": None, "action_meaning": None,
      "state_dim": d, "state_keys": None,
      "state": data["obs"][s].reshape(n * t, d).astype(np.float32),
      "action": data["action"][s].reshape(n * t, a).astype(np.float32),
      "reward": data["reward"][s].reshape(n * t).astype(np.float64),
      "done": done.reshape(n * t).astype(np.float64),
      "terminal": np.zeros(n * t, np.float64), "info": {}, "pscore": pscore,
      "behavior_policy": "behavior", "dataset_id": int(s)}


def candidate_heads(policies, meta, state_dim):
  heads = []
  for p in range(meta["num_candidates"]):
    net = CandidateMLP([policies[f"p{p}_kernel{i}"] for i in range(meta["num_layers"])],
                       [policies[f"p{p}_bias{i}"] for i in range(meta["num_layers"])],
                       policies[f"p{p}_obs_mean"], policies[f"p{p}_obs_std"], meta["activation"],
                       meta["action_size"], meta.get("obs_clip", 10.0))
    heads.append(ContinuousEvalHead(base_policy=FixedPolicy(net, state_dim), name=f"cand{p}"))
  return heads


def scalar(x):
  """A plain float (None if missing or not finite) from a SCOPE metric; rank_correlation and
  regret are (value, p-value / k) tuples, of which the value is kept."""
  if isinstance(x, (tuple, list)):
    x = x[0]
  return None if x is None or not np.isfinite(x) else float(x)


def floats(x):
  return [scalar(v) for v in np.ravel(x)]


def run_dataset(data, policies, meta, s, keep_int_cast):
  """One dataset through SCOPE's pipeline: per-phase seconds, estimates, metrics."""
  fqe_args = meta["fqe"]
  names = [f"cand{p}" for p in range(meta["num_candidates"])]
  t_start = time.perf_counter()
  dataset = logged_dataset(data, s)
  heads = candidate_heads(policies, meta, dataset["state_dim"])

  t0 = time.perf_counter()
  d3rlpy.seed(int(meta["seed"]) + s)
  prep = CreateOPEInputExactSteps(
      env=None, model_args={"fqe": {
          "encoder_factory": VectorEncoderFactory(hidden_units=list(fqe_args["hidden"])),
          "q_func_factory": MeanQFunctionFactory(),
          "learning_rate": float(fqe_args["learning_rate"]),
          "batch_size": int(fqe_args["batch_size"])}},
      gamma=float(meta["gamma"]), bandwidth=float(meta["bandwidth"]), device="cpu:0")
  with contextlib.redirect_stdout(sys.stderr):
    input_dict = prep.obtain_whole_inputs(
        dataset, heads, require_value_prediction=True, q_function_method="fqe",
        n_steps=int(fqe_args["n_steps"]), random_state=int(meta["seed"]))
  t1 = time.perf_counter()
  for p, name in enumerate(names):
    input_dict[name]["on_policy_policy_value"] = np.array([float(meta["true_values"][p])])
  fqe_steps = [int(prep.fqe[name][0].grad_step) for name in names]
  fqe_batch = [int(prep.fqe[name][0].config.batch_size) for name in names]
  if fqe_steps != [int(fqe_args["n_steps"])] * len(names):
    raise RuntimeError(f"FQE ran {fqe_steps} steps, expected {fqe_args['n_steps']}")

  log(f"dataset {s}: estimators")
  t2 = time.perf_counter()
  ope_cls = OffPolicyEvaluation if keep_int_cast else OffPolicyEvaluationFloatActions
  evaluator = ope_cls(logged_dataset=dataset, ope_estimators=[cls() for cls in ESTIMATORS],
                      bandwidth=float(meta["bandwidth"]), disable_reward_after_done=False)
  estimates = evaluator.estimate_policy_value(input_dict)
  t3 = time.perf_counter()

  log(f"dataset {s}: selection")
  t4 = time.perf_counter()
  ops = OffPolicySelection(ope=evaluator)
  selection = ops.select_by_policy_value(
      input_dict, return_metrics=True, return_true_values=True,
      safety_threshold=float(meta["safety_threshold"]))
  topk = ops.obtain_topk_policy_value_selected_by_standard_ope(
      input_dict, return_safety_violation_rate=True,
      safety_threshold=float(meta["safety_threshold"]), max_topk=int(meta["max_topk"]))
  t5 = time.perf_counter()

  est_names = [cls.estimator_name for cls in ESTIMATORS]
  metric_keys = ("mean_squared_error", "rank_correlation", "regret", "type_i_error_rate",
                 "type_ii_error_rate")
  metrics = {e: {k: scalar(selection[e][k]) for k in metric_keys if k in selection[e]}
             for e in est_names}
  for e in est_names:  # top-k deployment, k = 1..max_topk
    metrics[e]["topk_mean_true_value"] = floats(topk[e]["mean"])
    metrics[e]["topk_safety_violation_rate"] = floats(topk[e]["safety_violation_rate"])
  return {
      "fqe_seconds": t1 - t0, "estimators_seconds": t3 - t2, "selection_seconds": t5 - t4,
      "total_seconds": t5 - t_start, "fqe_grad_steps": fqe_steps, "fqe_batch_size": fqe_batch,
      "estimates": {e: [float(estimates[name][e]) for name in names] for e in est_names},
      "metrics": metrics}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dir", required=True, help="datasets.npz, policies.npz, meta.json")
  parser.add_argument("--num_datasets", type=int, default=None, help="only the first K datasets")
  parser.add_argument("--keep_int_cast", action="store_true",
                      help="leave SCOPE's astype(int) of the logged continuous actions in place")
  parser.add_argument("--no_warmup", action="store_true",
                      help="skip the untimed warm-up run (2 FQE steps on dataset 0)")
  parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
  args = parser.parse_args()
  if args.threads is not None:
    torch.set_num_threads(args.threads)

  data, policies, meta = load_inputs(args.dir)
  num_datasets = data["obs"].shape[0]
  if args.num_datasets is not None:
    num_datasets = min(num_datasets, args.num_datasets)
  _, n, t, d = data["obs"].shape
  log(f"{args.dir}: {num_datasets} datasets x {n} trajectories x {t} steps, state {d}, action "
      f"{meta['action_size']}, {meta['num_candidates']} candidates, FQE {meta['fqe']}, "
      f"torch threads {torch.get_num_threads()}")

  warmup_seconds = None
  if not args.no_warmup:
    log("warm-up: dataset 0, 2 FQE steps per candidate (untimed in the totals)")
    t0 = time.perf_counter()
    run_dataset(data, policies, {**meta, "fqe": {**meta["fqe"], "n_steps": 2}}, 0,
                args.keep_int_cast)
    warmup_seconds = time.perf_counter() - t0

  per_dataset = []
  for s in range(num_datasets):
    log(f"dataset {s} ({s + 1} of {num_datasets}): fqe, {meta['num_candidates']} candidates")
    r = run_dataset(data, policies, meta, s, args.keep_int_cast)
    per_dataset.append(r)
    print(f"dataset {s}: fqe {r['fqe_seconds']:.3f}s, estimators {r['estimators_seconds']:.3f}s, "
          f"selection {r['selection_seconds']:.3f}s, total {r['total_seconds']:.3f}s", flush=True)
  totals = {f"{k}_seconds": sum(r[f"{k}_seconds"] for r in per_dataset) for k in PHASES}
  print(f"total over {num_datasets} datasets: " +
        ", ".join(f"{k} {totals[f'{k}_seconds']:.3f}s" for k in PHASES))

  out = {"versions": {"scope_rl": scope_rl.__version__, "d3rlpy": d3rlpy.__version__,
                      "torch": torch.__version__, "numpy": np.__version__},
         "torch_threads": torch.get_num_threads(), "num_datasets": num_datasets,
         "keep_int_cast": args.keep_int_cast, "warmup_seconds": warmup_seconds, "meta": meta,
         "per_dataset": per_dataset,
         "totals": totals}
  path = os.path.join(args.dir, "scope_rl_pipeline.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=1)
  log(f"wrote {path}")


if __name__ == "__main__":
  main()
