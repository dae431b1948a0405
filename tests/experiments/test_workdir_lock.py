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
  WorkdirLock(str(tmp_path)).acquire().release()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
  # A holder killed with SIGKILL leaves its LOCK file behind; the kernel dropped its lock.
  code = ("import sys, time; from experiments.workdir_lock import WorkdirLock; "
          f"WorkdirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")
  proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  assert proc.stdout.readline().strip() == "held"
  with pytest.raises(WorkdirLocked, match=f"in use by pid {proc.pid} on this host"):
    WorkdirLock(str(tmp_path)).acquire()
  proc.kill()
  proc.wait()
  assert json.load(open(tmp_path / "LOCK"))["pid"] == proc.pid  # stale file left behind
  with WorkdirLock(str(tmp_path)):
    assert json.load(open(tmp_path / "LOCK"))["pid"] == os.getpid()


def test_holder_on_another_host_is_named(tmp_path):
  fd = os.open(tmp_path / "LOCK", os.O_RDWR | os.O_CREAT)
  os.write(fd, json.dumps({"pid": 7, "host": "elsewhere", "since": "then"}).encode())
  import fcntl  # pylint: disable=import-outside-toplevel
  fcntl.flock(fd, fcntl.LOCK_EX)  # held, as a process on another host of a shared filesystem
  try:
    with pytest.raises(WorkdirLocked, match="in use by pid 7 on host elsewhere"):
      WorkdirLock(str(tmp_path)).acquire()
  finally:
    os.close(fd)
