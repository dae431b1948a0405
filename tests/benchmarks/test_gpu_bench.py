"""benchmarks/gpu_bench's stage runner: a stage past its cap is stopped with everything it
started, and its timestamped log tail is kept (no jax: plain Python subprocesses)."""

import sys
import time

from benchmarks import gpu_bench

# a stage's opening lines: start a child that would sleep on for a minute (its pid in `p`)
START_CHILD = ("import subprocess, sys, time\n"
               "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n")


def test_a_stage_past_its_cap_is_killed_with_its_children_and_keeps_its_log():
  # the stage prints, starts a grandchild that would outlive it, then sleeps past the cap
  script = ("print('started', flush=True)\n" + START_CHILD +
            "print('step 1 done', p.pid, flush=True)\n"
            "time.sleep(60)\n")
  t = time.time()
  run = gpu_bench.run_capped([sys.executable, "-c", script], seconds=3)
  assert time.time() - t < 10, "the cap did not stop the stage"
  assert run["returncode"] is None  # cut, not exited
  assert 3 <= run["seconds"] < 10
  logged = [line.split("] ", 1)[1] for line in run["log_tail"]]
  assert logged[0] == "started" and logged[1].startswith("step 1 done")
  assert run["log_tail"][0].startswith("[")
  _assert_gone(int(logged[1].split()[-1]))


def _assert_gone(pid):
  """`pid` has been killed: gone, or a zombie that nobody has reaped yet."""
  for _ in range(50):
    try:
      with open(f"/proc/{pid}/stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
          return
    except FileNotFoundError:
      return
    time.sleep(0.1)
  raise AssertionError(f"process {pid} outlived its stage")


def test_a_stage_that_exits_leaving_a_child_returns_at_once_and_the_child_is_killed():
  script = (START_CHILD + "print(p.pid, flush=True)\n"
            "sys.stdout.buffer.write(b'bad utf-8 \\xff\\n')\n")
  t = time.time()
  run = gpu_bench.run_capped([sys.executable, "-c", script], seconds=30)
  assert time.time() - t < 10, "waited for the leftover child instead of the stage"
  assert run["returncode"] == 0
  assert "bad utf-8" in run["log_tail"][1]
  _assert_gone(int(run["log_tail"][0].split("] ", 1)[1]))


def test_a_stage_that_ends_reports_its_exit_code_and_only_the_tail():
  script = "import sys\nfor i in range(50): print(i)\nsys.exit(3)\n"
  run = gpu_bench.run_capped([sys.executable, "-c", script], seconds=30, tail=5)
  assert run["returncode"] == 3
  assert [line.split("] ", 1)[1] for line in run["log_tail"]] == ["45", "46", "47", "48", "49"]
