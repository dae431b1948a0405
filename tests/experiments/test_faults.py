"""Fault injection through the train binary: divergence, damaged checkpoints, SIGTERM,
write failures and two processes on one workdir (issue 14). Every recovered run must
end in exactly the parameters of an uninterrupted one."""

import glob
import json
import os
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from experiments import runner
from experiments.checkpoints import Checkpointer
from tests.experiments import binary
from tests.experiments.binary import TINY

FLAGS = [*binary.args(TINY), "--noprogress", "--cpu_devices=1"]


def _train(workdir, *extra, limit_bytes=None):
  """The binary on TINY; `limit_bytes` caps the size of any file it writes (RLIMIT_FSIZE:
  a disk that fills up, for any user, root included)."""
  flags = [*FLAGS, f"--workdir={workdir}", *extra]
  if limit_bytes is None:
    return binary.run("experiments.train", *flags)
  return binary.run("-c", _LIMITED.format(limit=limit_bytes), *flags)


# The binary under a file-size limit, set in the child itself (no fork-time hook in the
# multithreaded test process).
_LIMITED = ("import resource, runpy, sys; "
            "resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "runpy.run_module('experiments.train', run_name='__main__', alter_sys=True)")


def _summary(out):
  return json.loads(out.stdout[out.stdout.index("{"):])


def _last_line(out):
  return out.stderr.strip().splitlines()[-1]


def _assert_same_params(a_dir, b_dir, seeds=None):
  """The whole final train state (parameters, optimiser, reward statistics, envs, key) of
  the two runs is identical, for `seeds` (default: all)."""
  a, b = runner.load_state(str(a_dir)), runner.load_state(str(b_dir))
  pick = (lambda x: x) if seeds is None else (lambda x: x[np.asarray(seeds)])
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(pick(x), pick(y)), a, b)
  assert float(np.asarray(a.reward_norm.stats.count)[0]) > 0  # the statistics were used


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run, with every chunk's checkpoint kept."""
  workdir = tmp_path_factory.mktemp("reference")
  out = _train(workdir, "--keep_checkpoints")
  assert out.returncode == 0, out.stderr[-3000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["0", "1", "2", "3", "4"]
  return workdir


@pytest.fixture(scope="module")
def partial(reference, tmp_path_factory):
  """The same run as if stopped after 2 of its 4 chunks: the reference's files up to
  chunk 2 (checkpoints 1 and 2, as a run keeping the last 2 has them)."""
  workdir = tmp_path_factory.mktemp("partial")
  shutil.copy(reference / "config.json", workdir)
  for step in (1, 2):
    shutil.copytree(reference / "checkpoints" / str(step), workdir / "checkpoints" / str(step))
  rows = [l for l in open(reference / "metrics.jsonl") if json.loads(l)["chunk"] <= 2]
  (workdir / "metrics.jsonl").write_text("".join(rows))
  return workdir


def _copy(src, tmp_path):
  dst = tmp_path / "run"
  shutil.copytree(src, dst)
  return dst


def _data_file(workdir, step):
  """The largest file of checkpoint `step` (array data)."""
  files = [f for f in glob.glob(f"{workdir}/checkpoints/{step}/**/*", recursive=True)
           if os.path.isfile(f)]
  return max(files, key=os.path.getsize)


def _flip_bytes(path, count=4):
  data = bytearray(open(path, "rb").read())
  for i in range(count):
    data[len(data) // 2 + 97 * i] ^= 0xFF
  open(path, "wb").write(data)


def _blow_up_seed_1(workdir):
  """Scales seed 1's parameters in the newest checkpoint (2) by 1e30, as a bad step would:
  finite, but its next update overflows. -> the injected state."""
  state = runner.load_state(str(workdir))
  seed = np.arange(TINY["num_seeds"])
  state = state.replace(params=jax.tree.map(
      lambda x: np.where((seed == 1).reshape((-1,) + (1,) * (x.ndim - 1)), x * 1e30, x)
      if np.issubdtype(x.dtype, np.floating) else x, state.params))
  shutil.rmtree(workdir / "checkpoints" / "2")
  ckpt = Checkpointer(str(workdir / "checkpoints"))
  ckpt.save(2, state)
  ckpt.close()
  return state


def test_a_seed_that_blows_up_is_frozen_before_it_and_the_other_goes_on(reference, partial,
                                                                         tmp_path):
  workdir = _copy(partial, tmp_path)
  injected = _blow_up_seed_1(workdir)
  interrupted = tmp_path / "interrupted"
  shutil.copytree(workdir, interrupted)

  out = _train(workdir)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "seed 1 diverged at env step" in out.stderr
  summary = _summary(out)
  assert summary["finished"] and not summary["all_diverged"]
  (report,) = [dict(d) for d in summary["diverged"]]
  reason = report.pop("reason")
  assert reason == "non-finite policy parameters" or reason.endswith("| > 1e+10"), reason
  updates_per_chunk = 12 // 4  # 768 steps / 64 per update, in 4 chunks
  assert report == {"seed": 1, "chunk": 3, "update": 2 * updates_per_chunk,
                    "env_step": 2 * updates_per_chunk * 64 + 64, "frozen_at_chunk": 2}
  rows = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
  assert [r["chunk"] for r in rows if r["seed"] == 1 and "diverged" in r] == [3, 4]
  assert all(r["train/policy_loss"] is None for r in rows if "diverged" in r)
  assert all(np.isfinite(r["train/policy_loss"]) for r in rows if r["seed"] == 0 and r["chunk"])
  # Seed 0 trained on exactly as uninterrupted; seed 1 is frozen at its state before the
  # chunk in which it diverged (finite), not at the diverged one.
  _assert_same_params(reference, workdir, seeds=[0])
  final = runner.load_state(str(workdir))
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(x[1], y[1]), final.params,
               injected.params)
  assert all(np.isfinite(x[1]).all() for x in jax.tree.leaves(final.params))

  # Stopped after the chunk in which the seed froze and resumed: the same run.
  out = _train(interrupted, "--max_chunks=1")
  assert out.returncode == 0 and _summary(out)["diverged"], out.stderr[-3000:]
  out = _train(interrupted)
  assert out.returncode == 0, out.stderr[-3000:]
  assert _summary(out)["diverged"] == summary["diverged"]
  _assert_same_params(workdir, interrupted)
  assert [json.loads(l) for l in open(interrupted / "metrics.jsonl")] == rows


def test_every_seed_diverging_exits_non_zero_with_one_line(tmp_path):
  # The example: a learning rate of 1e4 keeps the parameters finite while
  # approx_kl and the losses explode; that must not end as a quiet "finished".
  out = _train(tmp_path, "--override=learning_rate=1e4")
  assert out.returncode == 3, out.stderr[-3000:]
  assert _last_line(out).startswith("error: every seed diverged (seed 0 first at env step 64: |")
  summary = json.load(open(tmp_path / "summary.json"))
  assert summary["all_diverged"] and not summary["finished"] and summary["chunks_done"] == 1
  assert [d["seed"] for d in summary["diverged"]] == [0, 1]


def test_damaged_newest_checkpoint_falls_back_to_the_previous(reference, partial, tmp_path):
  workdir = _copy(partial, tmp_path)
  _flip_bytes(_data_file(workdir, 2))
  out = _train(workdir)
  assert out.returncode == 0, out.stderr[-3000:]
  warning = [l for l in out.stderr.splitlines() if l.startswith("warning: checkpoint 2")]
  assert warning and "resuming from checkpoint 1" in warning[0], out.stderr[-3000:]
  summary = _summary(out)
  assert summary["finished"] and summary["resumed_from_chunk"] == 1
  assert os.listdir(workdir / "checkpoints.damaged") == ["2"]  # kept, out of the way
  _assert_same_params(reference, workdir)
  ref_rows = [json.loads(l) for l in open(reference / "metrics.jsonl")]
  assert [json.loads(l) for l in open(workdir / "metrics.jsonl")] == ref_rows


def test_no_readable_checkpoint_is_one_clear_error(partial, tmp_path):
  workdir = _copy(partial, tmp_path)
  for step in (1, 2):
    _flip_bytes(_data_file(workdir, step))
  out = _train(workdir)
  assert out.returncode == 1
  last = _last_line(out)
  assert last.startswith(f"error: no readable checkpoint in {workdir}/checkpoints: 2: ") and \
      "1: checkpoint 1 is damaged" in last, out.stderr[-3000:]
  assert "Traceback" not in out.stderr


def test_full_disk_mid_run_stops_clearly_and_loses_nothing(reference, partial, tmp_path):
  workdir = _copy(partial, tmp_path)
  metrics_before = open(workdir / "metrics.jsonl").read()
  # Files may grow to 8 kB: the lock and metrics fit, checkpoint 3's metadata (17 kB) does not.
  out = _train(workdir, limit_bytes=8192)
  assert out.returncode == 1
  assert _last_line(out).startswith(f"error: cannot write checkpoint 3 in {workdir} (File too "
                                    "large); checkpoint 2 and the metrics up to it are intact")
  assert open(workdir / "metrics.jsonl").read().startswith(metrics_before)
  assert not os.path.exists(workdir / "LOCK")
  out = _train(workdir)  # space freed: the same command resumes
  assert out.returncode == 0, out.stderr[-3000:]
  assert _summary(out)["resumed_from_chunk"] == 2
  _assert_same_params(reference, workdir)


def test_unwritable_workdir_is_one_clear_error(tmp_path):
  workdir = tmp_path / "readonly"
  workdir.mkdir()
  if os.geteuid() == 0:  # root writes through permissions: make every write fail instead
    out = _train(workdir, limit_bytes=16)  # (python's own start-up writes 4 bytes to /tmp)
    reason = "File too large"
  else:
    workdir.chmod(0o555)
    out = _train(workdir)
    reason = "Permission denied"
  assert out.returncode == 1
  assert _last_line(out) == f"error: cannot write to {workdir}: {reason}", out.stderr[-3000:]
  assert "Traceback" not in out.stderr


def test_sigterm_checkpoints_and_resumes_exactly_and_a_second_process_is_refused(
    reference, tmp_path):
  proc = subprocess.Popen(binary.command("experiments.train", *FLAGS, f"--workdir={tmp_path}"),
                          cwd=binary.ROOT, env=binary.environ(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 300
    while not os.path.exists(tmp_path / "config.json"):  # written after the handler is set
      assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
      time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)  # hold it mid-run while a second process tries
    holder = json.load(open(tmp_path / "LOCK"))
    second = _train(tmp_path)
    assert second.returncode == 1
    assert _last_line(second).startswith(
        f"error: {tmp_path} is in use by pid {proc.pid} on this host"), second.stderr[-3000:]
    assert holder["pid"] == proc.pid
    proc.send_signal(signal.SIGCONT)
    t = time.time()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 75, stderr[-3000:]
  summary = json.loads(stdout[stdout.index("{"):])
  # Signalled while it compiles (held there), it stops at its last checkpoint before
  # the first chunk; one signalled in a chunk stops after it. Either is a checkpoint.
  stopped = summary["chunks_done"]
  assert summary["preempted"] and stopped < 4 and not summary["finished"]
  assert stderr.strip().splitlines()[-1].startswith(f"preempted: stopped at checkpoint {stopped}")
  assert 0 <= summary["seconds_from_sigterm"] < time.time() - t + 1
  assert not os.path.exists(tmp_path / "LOCK")
  out = _train(tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  assert _summary(out)["resumed_from_chunk"] == stopped
  _assert_same_params(reference, tmp_path)
  ref_rows = [json.loads(l) for l in open(reference / "metrics.jsonl")]
  assert [json.loads(l) for l in open(tmp_path / "metrics.jsonl")] == ref_rows
