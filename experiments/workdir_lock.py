"""One process per workdir: a lock file holding the holder's pid, host and start time.

Two runs writing one workdir interleave metrics and race on checkpoints. `acquire`
creates `<workdir>/LOCK` atomically (O_EXCL); a second process finds it and is refused
with the holder named. A lock left by a process that died without releasing it (kill -9,
a crashed node) is stale: on the same host, when its pid is gone or now belongs to a
process started at another time (pid reuse); it is then taken over. On another host
liveness cannot be checked, so the message says how to clear it by hand.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Optional

LOCK_NAME = "LOCK"


class WorkdirLocked(RuntimeError):
  """Another live process holds the workdir."""


def _start_ticks(pid: int) -> Optional[int]:
  """The process's start time in clock ticks since boot (Linux), None if unknown or gone."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after "pid (comm)"
  except (OSError, IndexError, ValueError):
    return None


def _alive(holder: dict) -> bool:
  pid = holder.get("pid")
  if not isinstance(pid, int):
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # exists, another user's
  ticks = _start_ticks(pid)
  return ticks is None or holder.get("start_ticks") in (None, ticks)


def _holder(path: str) -> Optional[dict]:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}  # unreadable or half-written (its writer died mid-write): stale


def _age(path: str) -> float:
  try:
    return time.time() - os.path.getmtime(path)
  except OSError:
    return 0.0


class WorkdirLock:
  """Held from `acquire` until `release` (or use as a context manager)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_NAME)
    self._held = False

  def acquire(self) -> "WorkdirLock":
    """Takes the lock; raises WorkdirLocked naming the holder, OSError if the workdir
    cannot be written."""
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "start_ticks": _start_ticks(os.getpid()), "since": time.strftime("%FT%T%z")}
    for _ in range(100):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = _holder(self.path)
        if holder is None:
          continue  # released meanwhile
        if holder and holder.get("host") != me["host"]:
          raise WorkdirLocked(
              f"{os.path.dirname(self.path)} is in use by pid {holder.get('pid')} on host "
              f"{holder.get('host')} (since {holder.get('since')}); if that run is gone, "
              f"delete {self.path}") from None
        if not holder and _age(self.path) < 10:
          time.sleep(0.1)  # being written by a process that has just created it
          continue
        if holder and _alive(holder):
          raise WorkdirLocked(
              f"{os.path.dirname(self.path)} is in use by pid {holder['pid']} on this host "
              f"(since {holder.get('since')}); wait for it or use another --workdir") from None
        try:  # stale: its holder is gone
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      try:
        data = json.dumps(me).encode()
        while data:  # a write past a size limit is partial first, an error next
          data = data[os.write(fd, data):]
        os.fsync(fd)
      except OSError:
        os.close(fd)
        os.remove(self.path)
        raise
      os.close(fd)
      self._held = True
      return self
    raise WorkdirLocked(f"could not take {self.path}: other processes keep taking it")

  def release(self) -> None:
    """Removes the lock if this process holds it."""
    if self._held:
      self._held = False
      holder = _holder(self.path)
      if holder and holder.get("pid") == os.getpid():
        os.remove(self.path)

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
