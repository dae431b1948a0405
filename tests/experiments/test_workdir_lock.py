"""The workdir lock: refusal while its holder lives, take-over when it is stale."""

import json
import os
import socket
import subprocess
import sys

import pytest

from experiments.workdir_lock import WorkdirLock, WorkdirLocked


def test_second_holder_is_refused_then_lock_is_released(tmp_path):
  with WorkdirLock(str(tmp_path)):
    holder = json.load(open(tmp_path / "LOCK"))
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(WorkdirLocked, match=f"in use by pid {os.getpid()} on this host"):
      WorkdirLock(str(tmp_path)).acquire()
  assert not os.path.exists(tmp_path / "LOCK")


def test_stale_locks_are_taken_over(tmp_path):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True).stdout.strip()
  lock = tmp_path / "LOCK"
  # A holder that died (kill -9), and one whose pid now runs another process (pid reuse).
  for holder in ({"pid": int(dead), "host": socket.gethostname()},
                 {"pid": os.getpid(), "host": socket.gethostname(), "start_ticks": -5}):
    lock.write_text(json.dumps(holder))
    with WorkdirLock(str(tmp_path)):
      assert json.load(open(lock))["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_of_another_host_is_refused_with_how_to_clear_it(tmp_path):
  (tmp_path / "LOCK").write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "then"}))
  with pytest.raises(WorkdirLocked, match=f"pid 1 on host elsewhere .*delete {tmp_path}/LOCK"):
    WorkdirLock(str(tmp_path)).acquire()
