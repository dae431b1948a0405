"""The OPE sweep binary end to end on a tiny run: outputs, consistency, logged data,
resume from its saved stages, one clear error for a damaged candidate run."""

import csv
import glob
import json
import os
import re
import shutil

import numpy as np
import pytest

from evaluation import data as data_lib
from evaluation import metrics
from evaluation.ope import ESTIMATORS
from tests.experiments import binary
from tests.notebooks.execute import execute, images, stream_text

FLAGS = ["--env=brax/inverted_pendulum", "--policy_steps=1024", "--policy_stages=2",
         "--policy_override=num_envs=8", "--policy_override=unroll_length=16",
         "--policy_override=num_minibatches=2", "--policy_override=num_epochs=2",
         "--policy_override=policy_hidden=(16,)", "--policy_override=value_hidden=(16,)",
         "--temperatures=0.5,1.0", "--horizon=20", "--num_datasets=2",
         "--num_trajectories=16", "--true_episodes=32", "--fqe_steps_per_stage=5",
         "--num_bootstrap=100"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
  """The sweep as notebooks/sharpe_ratio_at_k.ipynb runs it at its tiny budget (FLAGS): one
  run checks both the binary and the notebook (its figures are asserted in test_outputs)."""
  runs = tmp_path_factory.mktemp("ope")
  # Two host devices: the two datasets are sharded one per device.
  book = execute("sharpe_ratio_at_k", runs, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  tiny = book.cells[2].source.split('"small"')[0]
  assert re.findall(r'"(--[^"]*)"', tiny) == FLAGS, "the notebook's tiny flags differ from FLAGS"
  return str(runs / "sharpe_ratio"), stream_text(book), images(book)


def test_outputs(sweep_dir):
  workdir, stdout, shown = sweep_dir
  assert shown == 2   # the notebook's: SharpeRatio@k beside ours recorded; estimated vs true
  for name in ("ope_summary.json", "ope_table.csv", "sharpe_ratio_at_k.png",
               "estimated_vs_true.png", "logged/dataset_0.npz", "logged/dataset_0.json",
               "logged/ope_inputs_0.npz"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert "| sndr |" in stdout
  with open(os.path.join(workdir, "ope_table.csv")) as f:
    rows = list(csv.reader(f))
  assert [r[0] for r in rows[1:]] == list(ESTIMATORS) and rows[0][-1] == "sharpe_ratio@4"


def test_summary_is_consistent(sweep_dir):
  workdir, _, _ = sweep_dir
  with open(os.path.join(workdir, "ope_summary.json")) as f:
    s = json.load(f)
  # Two checkpoint stages x two temperatures, plus the trained candidate source.
  assert len(s["candidates"]) == 4 and s["ks"] == [1, 2, 3, 4]
  assert s["timing"]["devices"] == 2
  assert os.path.exists(os.path.join(workdir, "policy", "summary.json"))
  true = np.array([c["true_value"] for c in s["candidates"]])
  assert all(c["true_value_se"] > 0 for c in s["candidates"])
  bv = s["behavior"]["value"]                                  # V(π_b) by Monte-Carlo
  assert s["behavior"]["value_se"] > 0 and len(s["behavior"]["logged_mean_return_per_dataset"]) == 2
  assert set(s["estimators"]) == set(ESTIMATORS)
  for name, e in s["estimators"].items():
    est = np.array(e["estimates"])
    assert est.shape == (2, 4) and np.isfinite(est).all(), name
    for d in range(2):
      want = [metrics.sharpe_ratio_at_k(est[d], true, bv, k) for k in (2, 3, 4)]
      got = e["metrics_per_dataset"]["sharpe_ratio@k"][d][1:]
      np.testing.assert_allclose(got, np.asarray(want, np.float64), rtol=1e-4, atol=1e-5)
    assert e["metrics_mean"]["sharpe_ratio@k"][0] is None     # undefined at k = 1
    assert e["nonfinite_datasets"] == 0
    per = np.array(e["metrics_per_dataset"]["mse"], np.float64)
    np.testing.assert_allclose(e["metrics_mean"]["mse"], per.mean(), rtol=1e-6)   # a plain mean


def test_return_distributions_and_selection_by_risk(sweep_dir):
  workdir, stdout, _ = sweep_dir
  assert os.path.getsize(os.path.join(workdir, "return_cdfs.png")) > 0
  assert "| cd_sntdr |" in stdout
  with open(os.path.join(workdir, "ope_summary.json")) as f:
    s = json.load(f)
  risk = s["risk"]
  m = np.array(risk["thresholds"])
  assert m.shape == (64,) and (np.diff(m) > 0).all()
  true = np.array([c["true_value"] for c in s["candidates"]])
  # the Monte-Carlo CDF's mean on the grid: each return moves up to the next threshold
  np.testing.assert_array_less(np.abs(np.array(risk["true"]["mean"]) - true), np.diff(m).max() + 1e-4)
  cvar, q1 = np.array(risk["true"]["cvar"]), np.array(risk["true"]["lower_quartile"])
  assert (cvar <= np.array(risk["true"]["mean"]) + 1e-5).all() and (cvar <= q1 + 1e-5).all()
  assert set(risk["estimators"]) == {"cd_dm", "cd_tis", "cd_sntis", "cd_tdr", "cd_sntdr"}
  for name, e in risk["estimators"].items():
    est = np.array(e["estimated"]["cvar"])
    assert est.shape == (2, 4) and np.isfinite(est).all(), name
    err = np.abs(est - cvar).mean()
    assert e["abs_error_mean"]["cvar"] == pytest.approx(err, rel=1e-4), name
    sel = s["risk"]["selection"][f"{name}/cvar"]["metrics_mean"]
    assert len(sel["regret@k"]) == 4 and sel["regret@k"][-1] == pytest.approx(0, abs=1e-5)


def test_intervals_and_selection_by_lower_bound(sweep_dir):
  workdir, stdout, _ = sweep_dir
  with open(os.path.join(workdir, "ope_summary.json")) as f:
    s = json.load(f)
  assert "interval coverage" in stdout
  true = np.array([c["true_value"] for c in s["candidates"]])
  for name in ESTIMATORS:
    for ci in ("bootstrap", "hoeffding", "bernstein", "ttest"):
      v = np.array(s["intervals"]["per_dataset"][name][ci])          # [S, P, 2]
      assert v.shape == (2, 4, 2) and (v[..., 0] <= v[..., 1]).all(), (name, ci)
      est = np.array(s["estimators"][name]["estimates"])
      if ci != "bootstrap":                                          # centred on the estimate
        np.testing.assert_allclose(v.mean(-1), est, rtol=1e-4, atol=1e-4)
      covered = ((v[..., 0] <= true) & (true <= v[..., 1])).mean()
      np.testing.assert_allclose(s["intervals"]["coverage"][name][ci]["coverage"], covered)
      sel = s["selection_by_lower_bound"][f"{name}/{ci}-lower"]["metrics_mean"]
      assert len(sel["sharpe_ratio@k"]) == 4 and sel["regret@k"][-1] == pytest.approx(0, abs=1e-4)


def test_logged_dataset_loads(sweep_dir):
  workdir, _, _ = sweep_dir
  data = data_lib.load(os.path.join(workdir, "logged", "dataset_0"))
  assert data.reward.shape == (16, 20)
  inputs = np.load(os.path.join(workdir, "logged", "ope_inputs_0.npz"))
  assert inputs["log_ratio"].shape == (4, 16, 20) and inputs["true_values"].shape == (4,)


def test_rerun_resumes_from_saved_stages(sweep_dir, tmp_path):
  """Every stage is read back, not recomputed, and the results are the same."""
  workdir, _, _ = sweep_dir
  copy = tmp_path / "ope"
  shutil.copytree(workdir, copy)
  os.remove(copy / "ope_summary.json")
  env = binary.environ(XLA_FLAGS="--xla_force_host_platform_device_count=2")
  out = binary.run("experiments.ope_sweep", f"--workdir={copy}", *FLAGS, env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  for stage in ("true_returns", "datasets", "fqe", "intervals"):
    assert f"stage {stage}: read from" in out.stderr
  assert "training the candidate source" not in out.stderr
  a = json.load(open(os.path.join(workdir, "ope_summary.json")))
  b = json.load(open(copy / "ope_summary.json"))
  assert a["estimators"] == b["estimators"] and a["intervals"] == b["intervals"]


def test_damaged_candidate_checkpoint_is_one_clear_error(sweep_dir, tmp_path):
  workdir, _, _ = sweep_dir
  policy = tmp_path / "policy"
  shutil.copytree(os.path.join(workdir, "policy"), policy)
  files = [f for f in glob.glob(f"{policy}/checkpoints/1/**/*", recursive=True) if os.path.isfile(f)]
  path = max(files, key=os.path.getsize)
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0xFF
  open(path, "wb").write(data)
  out = binary.run("experiments.ope_sweep", f"--workdir={tmp_path / 'ope'}",
                   f"--policy_workdir={policy}", *FLAGS)
  assert out.returncode == 1
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: candidate checkpoint 1 of {policy}: checkpoint 1 is damaged: "), \
      out.stderr[-3000:]
