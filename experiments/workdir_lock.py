"""One process per workdir: an flock'ed lock file naming the holder's pid and host.

Two runs writing one workdir interleave metrics and race on checkpoints. `acquire` takes
an exclusive `flock` on `<workdir>/LOCK` and writes the holder's pid, host and start
time into it; a second process finds the lock taken and is refused with the holder
named. The kernel drops the lock when its holder dies (kill -9, OOM, a crashed node on
a network filesystem that supports locks, e.g. NFSv4), so a stale LOCK file is simply
taken over: no pid checks, which would be wrong across hosts and PID namespaces, and no
window in which two processes both judge it stale.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

LOCK_NAME = "LOCK"


class WorkdirLocked(RuntimeError):
  """Another live process holds the workdir."""


def _holder(fd: int) -> dict:
  try:
    return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
  except (OSError, ValueError):
    return {}


class WorkdirLock:
  """Held from `acquire` until `release` (or use as a context manager)."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_NAME)
    self._fd = None

  def acquire(self) -> "WorkdirLock":
    """Takes the lock; raises WorkdirLocked naming the holder, OSError if the workdir
    cannot be written."""
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        here = holder.get("host") == socket.gethostname()
        raise WorkdirLocked(
            f"{self.workdir} is in use by pid {holder.get('pid', '?')} on "
            f"{'this host' if here else 'host ' + str(holder.get('host', '?'))} (since "
            f"{holder.get('since', '?')}); wait for it or use another --workdir") from None
      # A holder that released (and unlinked) the file between our open and flock locked
      # an inode no longer at the path: start over on the new file.
      try:
        same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    try:
      data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "since": time.strftime("%FT%T%z")}).encode()
      os.ftruncate(fd, 0)
      while data:  # a write past a size limit is partial first, an error next
        data = data[os.write(fd, data):]
      os.fsync(fd)
    except OSError:
      os.close(fd)
      raise
    self._fd = fd
    return self

  def release(self) -> None:
    """Removes the lock file and drops the lock, if this process holds it."""
    if self._fd is not None:
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
      os.close(self._fd)  # drops the flock
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
