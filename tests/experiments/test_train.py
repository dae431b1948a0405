"""The training binary: outputs, resume-equals-uninterrupted, sharding, error paths."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from experiments import runner
from tests.experiments import binary
from tests.experiments.binary import TINY


def _binary(*args, env=None):
  return binary.run("experiments.train", *args, env=env)


def _read(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("full"))
  summary = runner.train(runner.RunSpec(**TINY), workdir, progress=False)
  return workdir, summary


def test_outputs(full_run):
  workdir, summary = full_run
  for name in ("config.json", "metrics.jsonl", "summary.json", "learning_curve.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert os.listdir(os.path.join(workdir, "checkpoints"))
  assert summary["finished"] and summary["num_seeds"] == 2 and len(summary["final_return"]) == 2
  assert summary["total_steps"] >= TINY["total_steps"] and summary["steps_per_second"] > 0
  for key in ("agent", "env", "wall_seconds", "compile_seconds"):
    assert key in summary
  rows = _read(os.path.join(workdir, "metrics.jsonl"))
  assert len(rows) == (TINY["num_evals"] + 1) * TINY["num_seeds"]
  assert sorted({r["chunk"] for r in rows}) == list(range(TINY["num_evals"] + 1))
  assert all("train/policy_loss" in r for r in rows if r["chunk"] > 0)
  assert summary["final_return"] == [r["eval_return"] for r in rows if r["chunk"] == 4]


def test_rerunning_a_finished_run_keeps_its_summary(full_run):
  workdir, summary = full_run
  again = runner.train(runner.RunSpec(**TINY), workdir, progress=False)
  assert again == summary and again["steps_per_second"] is not None


def test_offpolicy_resume_equals_uninterrupted(tmp_path):
  """The replay buffer is part of the checkpoint: a resumed SAC run matches exactly."""
  spec = {**TINY, "agent": "sac", "total_steps": 8 * 12, "eval_episodes": 1,
          "overrides": ("num_envs=4", "unroll_length=2", "utd_ratio=0.5", "batch_size=16",
                        "buffer_size=256", "learning_starts=32", "hidden=(16,)")}
  full = runner.train(runner.RunSpec(**spec), str(tmp_path / "a"), progress=False)
  assert full["total_steps"] == 32 + 8 * 12  # the prefill counts as env steps
  runner.train(runner.RunSpec(**spec), str(tmp_path / "b"), progress=False, max_chunks=1)
  runner.train(runner.RunSpec(**spec), str(tmp_path / "b"), progress=False)
  a, b = runner.load_state(str(tmp_path / "a")), runner.load_state(str(tmp_path / "b"))
  jax.tree.map(np.testing.assert_array_equal, a.learner, b.learner)
  jax.tree.map(np.testing.assert_array_equal, a.buffer, b.buffer)


def test_workdir_of_another_run_is_refused(full_run):
  workdir, _ = full_run
  with pytest.raises(ValueError, match="holds a different run"):
    runner.train(runner.RunSpec(**{**TINY, "seed": 4}), workdir, progress=False)


def test_a_run_written_before_a_new_config_field_resumes(full_run, tmp_path):
  """A field added to the agent's config since the run was written reads as its default
  (which keeps the old behaviour); overriding it is another run."""
  import shutil
  workdir = str(tmp_path / "old")
  shutil.copytree(full_run[0], workdir)
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    cfg = json.load(f)
  assert cfg["agent_config"].pop("state_dependent_std") is True
  with open(path, "w") as f:
    json.dump(cfg, f)
  assert runner.train(runner.RunSpec(**TINY), workdir, progress=False)["finished"]
  other = {**TINY, "overrides": TINY["overrides"] + ("state_dependent_std=False",)}
  with pytest.raises(ValueError, match="agent_config.state_dependent_std: True there, False now"):
    runner.train(runner.RunSpec(**other), workdir, progress=False)


_args = binary.args


def test_seeds_sharded_over_devices(full_run, tmp_path):
  workdir, _ = full_run
  env = binary.environ(XLA_FLAGS=os.environ["XLA_FLAGS"]
                       + " --xla_force_host_platform_device_count=2")
  out = _binary(*_args(TINY), f"--workdir={tmp_path}", "--noprogress", env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  summary = json.loads(out.stdout[out.stdout.index("{"):])
  assert summary["devices"] == 2
  # Each seed's computation is the same whichever device runs it.
  a, b = runner.load_state(workdir), runner.load_state(str(tmp_path))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
               a.params, b.params)


def test_sharded_mjx_run_resumes(tmp_path):
  # MJX states hold zero-size arrays, which XLA would replicate instead of shard.
  spec = {**TINY, "env": "dmc/pendulum_swingup", "num_evals": 4, "total_steps": 64 * 4}
  env = binary.environ(XLA_FLAGS=os.environ["XLA_FLAGS"]
                       + " --xla_force_host_platform_device_count=2")
  first = _binary(*_args(spec), f"--workdir={tmp_path}", "--noprogress", "--max_chunks=2", env=env)
  assert first.returncode == 0, first.stderr[-2000:]
  second = _binary(*_args(spec), f"--workdir={tmp_path}", "--noprogress", env=env)
  assert second.returncode == 0, second.stderr[-2000:]
  summary = json.loads(second.stdout[second.stdout.index("{"):])
  assert summary["devices"] == 2 and summary["finished"] and summary["resumed_from_chunk"] == 2


BAD_RUNS = [
    (dict(agent="dqn"), "unknown agent 'dqn'; known agents: a2pr, ailboost, ailboost_dacdisc, "
                        "dac, dac_ailboost, iql, mdpo, mdpo_off, ppo, prdc, props, sac, td3, td3_bc"),
    (dict(env="brax/nope"), "unknown env 'brax/nope'; known envs: brax/ant"),
    (dict(total_steps=0), "--total_steps must be positive"),
    (dict(num_seeds=-1), "--num_seeds must be positive"),
    (dict(overrides=("learning_rat=1",)), "unknown key 'learning_rat'"),
    (dict(agent="dac"), "DAC needs expert demonstrations: --demos=PATH"),
    (dict(agent="ailboost", overrides=("demos=/nonexistent/demos",)),
     "no logged data at /nonexistent/demos.npz"),
]


@pytest.mark.parametrize("fields,message", BAD_RUNS)
def test_bad_settings_raise_one_clear_error(fields, message, tmp_path):
  # In-process: the errors the binary prints as its last line (checked below).
  spec = runner.RunSpec(**{"agent": "ppo", "env": "brax/inverted_pendulum", "num_seeds": 1,
                           "total_steps": 10, **fields})
  with pytest.raises(ValueError) as error:
    runner.train(spec, str(tmp_path), progress=False)
  assert message in str(error.value).splitlines()[0]
  assert not os.path.exists(tmp_path / "config.json")


def test_bad_flags_exit_with_one_clear_line(tmp_path):
  for args, message in (
      (["--agent=dqn"], BAD_RUNS[0][1]),
      (["--agent=ailboost", "--demos=/nonexistent/demos"], BAD_RUNS[-1][1])):
    out = _binary(*args, f"--workdir={tmp_path}")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last == f"error: {message}" or (last.startswith("error: ") and message in last), \
        out.stderr[-2000:]
    assert not os.path.exists(tmp_path / "config.json")


def test_missing_workdir():
  out = _binary("--agent=ppo")
  assert out.returncode != 0 and out.stderr.strip().splitlines()[-1] == "error: --workdir is required"


@pytest.mark.parametrize("agent, overrides", [
    ("mdpo", ("num_envs=8", "unroll_length=8", "value_minibatches=2", "sgd_steps=2",
              "policy_hidden=(16,)", "value_hidden=(16,)")),
    ("props", ("num_envs=4", "unroll_length=4", "segments=2", "num_minibatches=2",
               "props_minibatches=2", "num_epochs=2", "props_epochs=2", "sampling_error_epochs=1",
               "policy_hidden=(16,)", "value_hidden=(16,)")),
])
def test_on_policy_agents_train_and_resume(agent, overrides, tmp_path):
  """MDPO and PROPS through the runner: same outputs as PPO; t_k / the learning-rate
  anneal span the run (total_steps filled in); resumed equals uninterrupted (PROPS, whose
  state is the richest: its buffer of past batches and the behaviour policy; MDPO's
  state resumes as every agent's does, tested through the binary with PPO)."""
  spec = {**TINY, "agent": agent, "total_steps": 64 * 4, "overrides": overrides}
  full = runner.train(runner.RunSpec(**spec), str(tmp_path / "a"), progress=False)
  assert full["finished"] and len(full["final_return"]) == 2
  config = json.load(open(tmp_path / "a" / "config.json"))
  rows = _read(tmp_path / "a" / "metrics.jsonl")
  assert {"train/tk" if agent == "mdpo" else "train/sampling_error"} <= set(rows[-1]), rows[-1]
  assert config["agent"] == agent
  if agent == "mdpo":
    return
  runner.train(runner.RunSpec(**spec), str(tmp_path / "b"), progress=False, max_chunks=2)
  runner.train(runner.RunSpec(**spec), str(tmp_path / "b"), progress=False)
  a, b = runner.load_state(str(tmp_path / "a")), runner.load_state(str(tmp_path / "b"))
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)


def test_dmc_runs_record_their_env_fidelity(tmp_path):
  """A dmc/ run stores its fidelity; one stored before issue 13 (none) ran the shipped port."""
  spec = runner.RunSpec(agent="ppo", env="dmc/cartpole_balance", num_seeds=1, total_steps=64)
  assert spec.env_args == ("fidelity=dm_control",)
  assert runner.RunSpec(agent="ppo", env="brax/hopper", num_seeds=1, total_steps=64).env_args == ()
  old = {**dataclasses.asdict(spec), "env_args": []}
  (tmp_path / "config.json").write_text(json.dumps(old))
  assert runner.read_spec(str(tmp_path))["env_args"] == ("fidelity=playground",)
