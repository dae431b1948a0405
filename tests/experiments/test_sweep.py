"""experiments.sweep: traced points vmapped with the seeds train exactly as separate runs;
static fields become programs; 2 processes under jax.distributed give the 1-process table."""

import json
import socket
import subprocess

import jax
import numpy as np
import pytest

from experiments import runner
from tests.experiments import binary
from tests.experiments.binary import TINY

ARGS = ["--agent=ppo", "--env=brax/inverted_pendulum", "--env_arg=episode_length=50",
        "--grid=learning_rate=3e-4|1e-3", "--grid=num_minibatches=2|4", "--num_seeds=2",
        f"--total_steps={64 * 12}", "--num_evals=2", "--eval_episodes=2", f"--seed={TINY['seed']}",
        "--noprogress"] + [f"--override={o}" for o in TINY["overrides"] if not o.startswith(
            "num_minibatches")]


# XLA's defaults (fusion emitters, optimisation level 3), not the tests' fast compilation
# (conftest.py), under which a member of a vmapped sweep and the same run alone differ in
# the last bits of their parameters: the sweeps here and the run they are compared with
# are binaries compiled with these flags, on one CPU device each.
ENV = binary.environ(XLA_FLAGS="--xla_cpu_use_fusion_emitters=true --xla_backend_optimization_level=3")


def _table(workdir):
  with open(workdir / "sweep.json") as f:
    return json.load(f)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("sweep1")
  out = binary.run("experiments.sweep", *ARGS, f"--workdir={workdir}", env=ENV)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir, out


def test_fields_are_split_into_traced_and_static(one_process):
  workdir, out = one_process
  assert ("traced (vmapped with the seeds): learning_rate; static (one program per value): "
          "num_minibatches") in out.stderr
  s = _table(workdir)
  assert s["traced"] == ["learning_rate"] and s["static"] == {"num_minibatches": "int field"}
  assert s["programs"] == 2 and len(s["points"]) == 4
  assert sorted(p.name for p in (workdir / "programs").iterdir()) == [
      "num_minibatches=2", "num_minibatches=4"]
  assert "  num_minibatches is static: int field" in out.stderr
  for p in s["points"]:
    assert len(p["final_return"]) == 2 and p["ci"][0] <= p["iqm"] <= p["ci"][1]
  for plot in ("sensitivity_learning_rate.png", "sensitivity_num_minibatches.png"):
    assert (workdir / plot).stat().st_size > 0
  assert "| 1e-3 | 4 |" in out.stdout


def test_traced_members_equal_separate_runs(one_process, tmp_path):
  """A point vmapped with the other learning rate trains exactly as its own run: same
  parameters, same returns (the members get the plain run's seed keys)."""
  workdir, _ = one_process
  spec = {**TINY, "num_evals": 2, "overrides": TINY["overrides"][:2] + ("num_minibatches=4",)
          + TINY["overrides"][3:] + ("learning_rate=1e-3",)}
  out = binary.run("experiments.train", *binary.args(spec), f"--workdir={tmp_path}",
                   "--cpu_devices=1", "--noprogress", env=ENV)
  assert out.returncode == 0, out.stderr[-3000:]
  (program,) = (workdir / "programs" / "num_minibatches=4").iterdir()
  swept = runner.load_state(str(program))
  mine = runner.load_state(str(tmp_path))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[2:], b), swept.params, mine.params)
  point = [p for p in _table(workdir)["points"]
           if p["learning_rate"] == "1e-3" and p["num_minibatches"] == "4"][0]
  with open(tmp_path / "summary.json") as f:
    assert point["final_return"] == json.load(f)["final_return"]


def test_two_processes_give_the_one_process_table(one_process, tmp_path):
  workdir, _ = one_process
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  flags = ARGS + [f"--workdir={tmp_path}", f"--coordinator=127.0.0.1:{port}", "--num_processes=2"]
  procs = [subprocess.Popen(binary.command("experiments.sweep", *flags, f"--process_id={i}"),
                            cwd=binary.ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in (0, 1)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  one, two = _table(workdir), _table(tmp_path)
  assert two["processes"] == 2 and one["processes"] == 1
  key = lambda t: [(p["learning_rate"], p["num_minibatches"], p["final_return"], p["iqm"], p["ci"])
                   for p in t["points"]]
  assert key(two) == key(one)


def test_bad_sweeps_are_one_clear_error(tmp_path):
  for flags, message in (
      (["--grid=learning_rate=1e-3|0.001"], "error: --grid repeats a value in 'learning_rate=1e-3|0.001'"),
      (["--random=num_minibatches=2:8"],
       "error: --random draws real numbers; num_minibatches is not a float field of ppo"),
      (["--grid=learning_rate=1e-3", "--random=learning_rate=log:1e-4:1e-2"],
       "error: ['learning_rate'] in both --grid and --random"),
      (["--random=learning_rate=log:0:1e-2"], "lo > 0 for log"),
      (["--grid=bogus=1|2"], "unknown key 'bogus'"),
      ([], "error: nothing to sweep")):
    out = binary.run("experiments.sweep", "--agent=ppo", f"--workdir={tmp_path}", *flags)
    assert out.returncode == 1 and message in out.stderr.strip().splitlines()[-1], out.stderr[-2000:]
