"""Offline agents through the training binary: a run reports D4RL's normalised score;
bad datasets and misuse of --dataset are one clear error each."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from evaluation import data as data_lib
from experiments import runner
from tests.experiments import binary


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  env = envs.make("brax/inverted_pendulum", episode_length=50)
  uniform = lambda obs, k: jax.random.uniform(k, obs.shape[:-1] + (1,), minval=-1, maxval=1)
  d = jax.jit(lambda k: data_lib.collect(env, uniform, lambda o, a: jnp.full(o.shape[0], -np.log(2.0)),
                                         k, 8, 50))(jax.random.PRNGKey(0))
  path = str(tmp_path_factory.mktemp("data") / "random")
  data_lib.save(data_lib.with_metadata(d, env="brax/inverted_pendulum", level="random",
                                       reference_returns={"random": 5.0, "expert": 50.0}), path)
  return path


def test_offline_run_reports_normalised_scores(dataset, tmp_path):
  spec = runner.RunSpec(agent="td3_bc", env="brax/inverted_pendulum", num_seeds=2,
                        total_steps=40, num_evals=2, eval_episodes=2,
                        env_args=("episode_length=50",),
                        overrides=(f"dataset={dataset}", "grad_steps=20", "hidden=(16,)"))
  summary = runner.train(spec, str(tmp_path), progress=False)
  assert summary["finished"] and summary["total_steps"] == 40  # gradient steps
  expected = [100 * (r - 5.0) / 45.0 for r in summary["final_return"]]
  np.testing.assert_allclose(summary["final_normalized_score"], expected)
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert {"train/bc_loss", "train/critic_loss", "train/lambda"} <= set(rows[-1])


def test_bad_dataset_use_is_one_clear_error(dataset, tmp_path):
  # Through the binary: an online agent given --dataset, and a dataset of another env.
  for args, message in (
      (["--agent=sac"], "error: --dataset is for the offline agents (td3_bc, iql, prdc, a2pr); sac learns "
                        "from the env"),
      (["--agent=td3_bc", "--env=brax/hopper"],
       "does not fit --env=brax/hopper: it was logged on brax/inverted_pendulum, not brax/hopper; "
       "its observations / actions have sizes 4 / 1, brax/hopper's are 11 / 3")):
    out = binary.run("experiments.train", *args, f"--dataset={dataset}", f"--workdir={tmp_path}",
                     "--noprogress")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert message in last and last.startswith("error: "), out.stderr[-2000:]
  # The same errors the binary prints (as ValueError / DataError), without a process each.
  for overrides, message in ((("grad_steps=5",), "IQL learns from a dataset: --dataset=PATH"),
                             (("dataset=/nonexistent/d",), "no logged data at /nonexistent/d.npz"),
                             # references of 50-step episodes, evaluated on 1000-step ones
                             ((f"dataset={dataset}",), "its episodes and reference returns are 50 "
                              "steps long, brax/inverted_pendulum's episodes 1000 "
                              r"\(--env_arg=episode_length=50\)")):
    spec = runner.RunSpec(agent="iql", env="brax/inverted_pendulum", num_seeds=1, total_steps=10,
                          overrides=overrides)
    with pytest.raises(ValueError, match=message):
      runner.train(spec, str(tmp_path / "inproc"), progress=False)


def test_ops_selects_among_offline_candidates(dataset, tmp_path):
  """experiments.ops end to end on tiny settings: a grid of 2 TD3+BC alphas x 2
  checkpoints are the candidates; every selection metric is recomputed here from the estimates and the
  Monte-Carlo true values it reports."""
  from evaluation import metrics  # pylint: disable=import-outside-toplevel
  out = binary.run("experiments.ops", f"--dataset={dataset}", "--env=brax/inverted_pendulum",
                   "--env_arg=episode_length=50", f"--workdir={tmp_path}", "--agents=td3_bc",
                   "--agent_override=td3_bc:grad_steps=20", "--agent_override=td3_bc:hidden=(16,)",
                   "--grid=td3_bc:alpha=1.0|2.5", "--num_seeds=1", "--grad_steps=40",
                   "--num_evals=2", "--true_episodes=8",
                   "--fqe_steps_per_stage=2", "--cdf_points=16", "--discount=0.99",
                   "--mwl_steps=20", "--mwl=time_bandwidth=2", "--mwl=batch_size=32")
  assert out.returncode == 0, out.stderr[-3000:]
  assert all(f"| {n} |" in out.stdout for n in ("sndr", "sam_is", "sam_dr", "cd_sntdr"))
  with open(tmp_path / "ops_summary.json") as f:
    s = json.load(f)
  assert [(c["config"]["alpha"], c["checkpoint"], c["seed"]) for c in s["candidates"]] == [
      ("1.0", 1, 0), ("1.0", 2, 0), ("2.5", 1, 0), ("2.5", 2, 0)]
  assert (tmp_path / "candidates" / "td3_bc" / "alpha=2.5" / "summary.json").exists()
  for plot in ("sharpe_ratio_at_k.png", "return_cdfs.png", "estimated_vs_true.png"):
    assert (tmp_path / plot).stat().st_size > 0
  assert (s["mwl"]["steps"], s["mwl"]["time_bandwidth"], s["mwl"]["batch_size"]) == (20, 2.0, 32)
  assert all(0 < c["mwl_max_step_mass"] < 2 for c in s["candidates"])   # 20 steps from w = 1
  assert set(s["timing"]) == {"candidates_seconds", "true_values_seconds", "ope_seconds",
                              "selection_seconds"}
  true = np.array([c["true_value"] for c in s["candidates"]])
  logged = np.asarray(data_lib.discounted_returns(data_lib.load(dataset), s["discount"]))
  assert s["behavior_value"] == pytest.approx(float(logged.mean()), rel=1e-5)
  for name, e in s["estimators"].items():
    est = np.array(e["estimates"], np.float32)
    mm = e["metrics_mean"]
    for k in (1, 2, 3):
      assert mm["best@k"][k - 1] == pytest.approx(float(metrics.best_at_k(est, true, k)), rel=1e-5)
      assert mm["worst@k"][k - 1] == pytest.approx(float(metrics.worst_at_k(est, true, k)), rel=1e-5)
    want = float(metrics.sharpe_ratio_at_k(est, true, s["behavior_value"], 2))
    got = mm["sharpe_ratio@k"][1]
    assert (got is None and np.isnan(want)) or got == pytest.approx(want, rel=1e-4, abs=1e-5), name
  assert set(s["risk"]["abs_error"]) == {"cd_dm", "cd_tis", "cd_sntis", "cd_tdr", "cd_sntdr"}
  fmt = lambda x: "nan" if x is None else f"{x:.3g}"   # as ops prints its tables
  for n in s["risk"]["abs_error"]:            # top-k by an estimated risk functional, printed
    for f in ("cvar", "lower_quartile"):
      mm = s["risk"]["selection"][f"{n}/{f}"]
      est = np.array(s["risk"]["estimated"][n][f], np.float32)
      true_f = np.array(s["risk"]["true"][f], np.float32)
      for k in (1, 2):
        assert mm["best@k"][k - 1] == pytest.approx(float(metrics.best_at_k(est, true_f, k)),
                                                    rel=1e-5), (n, f)
      assert (f"| {n} / {f} | {fmt(mm['rank_correlation'])} | {fmt(mm['regret@k'][0])} |"
              in out.stdout), (n, f, out.stdout[-2000:])
  bad = binary.run("experiments.ops", f"--dataset={dataset}", "--env=brax/inverted_pendulum",
                   f"--workdir={tmp_path / 'bad'}", "--agents=ppo")
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
      "error: --agents takes offline agents (td3_bc, iql, prdc, a2pr), got ['ppo']")
  bad = binary.run("experiments.ops", f"--dataset={dataset}", "--env=brax/inverted_pendulum",
                   f"--workdir={tmp_path / 'bad'}", "--agents=td3_bc", "--agent_override=alpha=3")
  assert bad.returncode == 1 and "AGENT:key=value" in bad.stderr.strip().splitlines()[-1]
  bad = binary.run("experiments.ops", f"--dataset={dataset}", "--env=brax/inverted_pendulum",
                   f"--workdir={tmp_path / 'bad'}", "--agents=td3_bc", "--grid=td3_bc:alpha=1|",
                   "--agent_override=td3_bc:alpha=3")
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
      "error: --grid takes AGENT:key=v1|v2|..., got 'td3_bc:alpha=1|'")
  for flag, message in (("--mwl=steps=5", "--mwl: cannot set steps (fixed to 2000 here)"),
                        ("--mwl=time_only=1.0", "MWLConfig.time_only needs a time_bandwidth")):
    bad = binary.run("experiments.ops", f"--dataset={dataset}", "--env=brax/inverted_pendulum",
                     f"--workdir={tmp_path / 'bad'}", flag)
    assert bad.returncode == 1 and message in bad.stderr.strip().splitlines()[-1], bad.stderr
