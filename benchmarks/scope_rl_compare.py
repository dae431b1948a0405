r"""Our OPE estimators vs SCOPE-RL 0.2.1's on the same logged data: values and speed.

    /tmp/venv-scope/bin/python benchmarks/scope_rl_compare.py --workdir=/tmp/ope3_det

Reads a sweep workdir of `experiments.ope_sweep` with deterministic candidates
(logged/dataset_0.npz, logged/ope_inputs_0.npz, ope_summary.json), runs SCOPE-RL's
continuous (kernel) estimators DM, TIS, PDIS, DR, SNTIS, SNPDIS, SNDR
(`scope_rl.ope.continuous`, `estimate_policy_value` called directly: the
OffPolicyEvaluation wrapper casts actions to int) on every candidate, and prints a
markdown table of |ours − SCOPE| (relative: / |SCOPE|) and estimates/s; all figures go to
<workdir>/scope_rl_compare.json. Runs in SCOPE-RL's virtualenv: numpy, scope_rl and the
standard library only, no jax and nothing of this project.

Inputs to SCOPE: pscore = π_b(a_t|s_t) = exp(behavior_log_prob) (the joint density in
column 0, ones in the rest: SCOPE multiplies the columns), evaluation_policy_action =
π_e(s_t), kernel="gaussian", our bandwidth and γ, no action_scaler, float64, and
state_action_value_prediction = [Q̂(s_t, a_t), V̂(s_t)] from our FQE (V̂ = Q̂(s, π_e(s))
for a deterministic π_e). Caveats:
  * DM and DR get the same Q̂, so they test the estimator formulas, not FQE.
  * SCOPE's Gaussian kernel keeps the 1-D constant (2πh²)^{-1/2} for any action size d
    (scope_rl/utils.py gaussian_kernel); ours is the d-dim density, so for d > 1 the
    plain IS/DR forms differ by (2πh²)^{-(d-1)/2} per step (SN forms agree).
  * SCOPE forms w = Π K / Π π_b from two separate cumulative products (estimators_base.py
    _calc_similarity_weight, _calc_behavior_policy_pscore_continuous) and self-normalises
    with w / (mean_i w + 1e-10) (continuous/basic_estimators.py SelfNormalized*); we sum
    log-ratios and normalise in log space. The 1e-10 shrinks SCOPE's SN estimates by
    mean_i w / (mean_i w + 1e-10): with T = 50 and a narrow kernel mean_i w_{0:T-1} can be
    ~1e-25, so SCOPE's SNTIS is ~0 and its SNPDIS/SNDR lose the late steps. The "SCOPE
    rescaled" column reruns the SN estimators with π_b at step t scaled by a per-step
    constant (see scope_inputs), which leaves the SN estimands unchanged and makes the
    1e-10 negligible, to check the formulas apart from it. The products can also
    under/overflow float64 where ours stay finite. No weight or pscore clipping either side.
  * SCOPE needs every trajectory to last T steps; steps after an episode's end are fed
    as ρ = 1 (evaluation action = logged action, pscore = K(0)), reward and Q̂ = V̂ = 0,
    which is what our mask does.
  * Our time is the sweep's: every estimator for S datasets × P candidates in one jitted,
    vmapped call (timing.estimate_seconds), divided by 7·P·S; SCOPE's is one
    `estimate_policy_value` call (input checks included), best of --repeats loops over P.
    Ours is one timed call, so at small S·P it is mostly dispatch overhead.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
from scope_rl.ope import continuous as ope

ESTIMATORS = {
    "dm": ope.DirectMethod, "tis": ope.TrajectoryWiseImportanceSampling,
    "pdis": ope.PerDecisionImportanceSampling, "dr": ope.DoublyRobust,
    "sntis": ope.SelfNormalizedTIS, "snpdis": ope.SelfNormalizedPDIS,
    "sndr": ope.SelfNormalizedDR}


def valid_mask(terminated, truncated):
  """[N, T] bool: steps up to and including each trajectory's first terminal/limit step."""
  done = (terminated | truncated).astype(np.int64)
  return (np.cumsum(done, axis=-1) - done) == 0


def logmeanexp(x, axis):
  """log mean exp(x) along axis, stably."""
  m = np.max(x, axis=axis, keepdims=True)
  return np.squeeze(m, axis) + np.log(np.mean(np.exp(x - m), axis=axis))


def scope_inputs(data, inputs, bandwidth, p, rescale=False):
  """SCOPE-RL keyword arguments for candidate p (flattened [N·T, ...], float64).

  rescale: multiply π_b at step t by c_t = m_t / m_{t-1}, m_t = mean_i w_{0:t}, so that
  SCOPE's mean_i w_{0:t} = 1 and its +1e-10 is negligible; the self-normalised estimates
  are invariant to it (the plain ones are not).
  """
  n, t, d = data["action"].shape
  mask = valid_mask(data["terminated"], data["truncated"])
  action = data["action"].astype(np.float64)
  target = np.where(mask[..., None], inputs["target_action"][p], action)
  log_k0 = -0.5 * np.log(2 * np.pi * bandwidth**2)
  log_pscore = np.where(mask, data["behavior_log_prob"].astype(np.float64), log_k0)
  if rescale:
    log_k = log_k0 - np.sum((target - action) ** 2, axis=-1) / (2 * bandwidth**2)
    log_m = logmeanexp(np.cumsum(log_k - log_pscore, axis=1), axis=0)
    log_pscore = log_pscore + np.diff(log_m, prepend=0.0)
  pscore = np.ones((n, t, d))
  pscore[..., 0] = np.exp(log_pscore)
  q = np.stack([inputs["q_sa"][p], inputs["v_s"][p]], axis=-1).astype(np.float64)
  return dict(step_per_trajectory=int(t), action=action.reshape(n * t, d),
              reward=np.where(mask, data["reward"], 0.0).astype(np.float64).reshape(n * t),
              pscore=pscore.reshape(n * t, d), evaluation_policy_action=target.reshape(n * t, d),
              state_action_value_prediction=(q * mask[..., None]).reshape(n * t, 2))


def log_ratio_gap(data, inputs, bandwidth):
  """max |our log ρ − log(K_h / π_b) as SCOPE forms it| over valid steps (1-D constant)."""
  mask = valid_mask(data["terminated"], data["truncated"])
  sq = np.sum((inputs["target_action"] - data["action"][None]) ** 2, axis=-1, dtype=np.float64)
  log_k = -sq / (2 * bandwidth**2) - 0.5 * np.log(2 * np.pi * bandwidth**2)
  return float(np.max(np.abs(inputs["log_ratio"] - (log_k - data["behavior_log_prob"])) * mask))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="/tmp/ope3_det")
  parser.add_argument("--repeats", type=int, default=5, help="timing loops (best is kept)")
  args = parser.parse_args()

  with np.load(os.path.join(args.workdir, "logged", "dataset_0.npz")) as f:
    data = {k: f[k] for k in f.files}
  with np.load(os.path.join(args.workdir, "logged", "ope_inputs_0.npz")) as f:
    inputs = {k: f[k] for k in f.files}
  if "target_action" not in inputs:
    raise SystemExit("ope_inputs_0.npz has no target_action: the sweep's candidates are not deterministic")
  bandwidth, gamma = float(inputs["bandwidth"]), float(inputs["discount"])
  num_cand = inputs["log_ratio"].shape[0]
  kwargs = [scope_inputs(data, inputs, bandwidth, p) for p in range(num_cand)]
  kw_rescaled = [scope_inputs(data, inputs, bandwidth, p, rescale=True) for p in range(num_cand)]
  common = dict(gamma=gamma, kernel="gaussian", bandwidth=bandwidth, action_scaler=None)

  rows = {}
  for name, cls in ESTIMATORS.items():
    est = cls()
    values, times = None, []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      values = [float(est.estimate_policy_value(**kw, **common)) for kw in kwargs]
      times.append((time.perf_counter() - t0) / num_cand)
    scope = np.asarray(values)
    ours = np.asarray(inputs[f"estimate_{name}"], np.float64)
    rel = lambda x: float(np.max(np.abs(ours - x) / np.maximum(np.abs(x), 1e-300)))
    rows[name] = {"ours": ours.tolist(), "scope": scope.tolist(),
                  "max_abs_diff": float(np.max(np.abs(ours - scope))), "max_rel_diff": rel(scope),
                  "scope_seconds_per_call": min(times),
                  "scope_seconds_per_call_median": statistics.median(times)}
    if name.startswith("sn"):
      rescaled = np.asarray([float(est.estimate_policy_value(**kw, **common)) for kw in kw_rescaled])
      rows[name].update(scope_rescaled=rescaled.tolist(), max_rel_diff_rescaled=rel(rescaled))

  ours_time = None
  summary_path = os.path.join(args.workdir, "ope_summary.json")
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      summary = json.load(f)
    s = summary["num_datasets"]
    ours_time = summary["timing"]["estimate_seconds"] / (len(ESTIMATORS) * num_cand * s)
  for r in rows.values():
    r["ours_seconds_per_estimate"] = ours_time
    r["speedup"] = None if ours_time is None else r["scope_seconds_per_call"] / ours_time

  n, t, d = data["action"].shape
  print(f"{args.workdir}: {num_cand} candidates, {n} trajectories x {t} steps, action size {d}, "
        f"h={bandwidth}, γ={gamma}; max |Δ log ρ| vs SCOPE's kernel/pscore = "
        f"{log_ratio_gap(data, inputs, bandwidth):.2e}")
  print("| estimator | max rel diff | max abs diff | rel diff, SCOPE rescaled | ours est/s "
        "| SCOPE est/s | ours/SCOPE |")
  print("|---|---|---|---|---|---|---|")
  fmt = lambda x: "n/a" if x is None else f"{x:,.0f}"
  for name, r in rows.items():
    ours_rate = None if ours_time is None else 1 / ours_time
    speed = "n/a" if r["speedup"] is None else f"{r['speedup']:.3g}x"
    resc = f"{r['max_rel_diff_rescaled']:.2e}" if "max_rel_diff_rescaled" in r else "–"
    print(f"| {name} | {r['max_rel_diff']:.2e} | {r['max_abs_diff']:.2e} | {resc} | {fmt(ours_rate)} | "
          f"{fmt(1 / r['scope_seconds_per_call'])} | {speed} |")

  out = {"workdir": args.workdir, "num_candidates": num_cand, "num_trajectories": n, "horizon": t,
         "action_size": d, "bandwidth": bandwidth, "discount": gamma, "repeats": args.repeats,
         "max_log_ratio_gap": log_ratio_gap(data, inputs, bandwidth), "estimators": rows,
         "scope_estimates_per_second_all": len(rows) / sum(r["scope_seconds_per_call"]
                                                           for r in rows.values())}
  with open(os.path.join(args.workdir, "scope_rl_compare.json"), "w") as f:
    json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
