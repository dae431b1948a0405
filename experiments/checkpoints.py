"""Orbax checkpoints of vmapped train states, verified on restore.

MJX physics states hold zero-size arrays, which orbax refuses to save; they carry no
data, so only the non-empty leaves are saved (keyed by their tree path) and the empty
ones are rebuilt from the template on restore.

Every saved step gets a digest (`DIGEST`: size and CRC-32 of each of its files), written
after orbax has committed the step. Restoring checks the newest step against its digest
before orbax reads it, because a flipped byte in array data need not make orbax fail:
it can restore wrong numbers silently. A step that fails the check or cannot be read is
moved to `<directory>.damaged/` (kept for inspection, out of orbax's way) and the next
older step is tried, with a warning naming both. A step without a digest (its process
died between orbax's commit and the digest) is restored unverified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import zlib
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

DIGEST = "offpolicy_lab_digest.json"


class CheckpointError(RuntimeError):
  """No checkpoint can be read, or one cannot be written; the message says which and why,
  `reason` only why."""

  def __init__(self, message: str, reason: str = "", damaged: bool = False):
    super().__init__(message)
    self.reason = reason or message
    self.damaged = damaged  # the step's files are not as written (or cannot be checked)


def _leaves(tree) -> list[tuple[str, Any]]:
  return [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _crc(path: str) -> int:
  crc = 0
  with open(path, "rb") as f:
    while chunk := f.read(1 << 22):
      crc = zlib.crc32(chunk, crc)
  return crc


def _files(step_dir: str) -> dict[str, list[int]]:
  """relative path -> [size, crc32] of every file under `step_dir` but the digest."""
  out = {}
  for root, _, names in os.walk(step_dir):
    for name in names:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step_dir)
      if rel not in (DIGEST, DIGEST + ".tmp"):
        out[rel] = [os.path.getsize(path), _crc(path)]
  return out


def verify(step_dir: str) -> Optional[str]:
  """Why `step_dir` does not match its digest (None if it does or has none)."""
  path = os.path.join(step_dir, DIGEST)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      expected = json.load(f)
  except (OSError, ValueError) as e:
    return f"its digest cannot be read ({e})"
  actual = _files(step_dir)
  for rel in sorted(set(expected) | set(actual)):
    if rel not in actual:
      return f"{rel} is missing"
    if rel not in expected:
      return f"{rel} is not in its digest"
    if actual[rel] != expected[rel]:
      return f"{rel} differs from its digest (size, crc32 {actual[rel]} != {expected[rel]})"
  return None


def checkpoint_digest(step_dir: str) -> Optional[dict]:
  """The digest of a saved step (relative path -> [size, crc32]), None if it has none."""
  try:
    with open(os.path.join(step_dir, DIGEST)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


class Checkpointer:
  """Keeps the last `max_to_keep` (None: all) states under `directory`, by integer step."""

  def __init__(self, directory: str, max_to_keep: Optional[int] = 2, local: bool = False):
    """`local`: this process alone writes and reads `directory` (a multi-host sweep's own
    program), with no barrier across the other processes; else every process of a
    multi-host run takes part and process 0 writes."""
    self.directory = os.path.abspath(directory)
    self._max_to_keep = max_to_keep
    self._local = local
    # a process's own checkpoints in a multi-process job go through host (numpy) arrays
    self._host_arrays = local and jax.process_count() > 1
    self._mngr = self._open()

  def _open(self):
    multi = {}
    if self._local and jax.process_count() > 1:
      me = jax.process_index()
      os.makedirs(self.directory, exist_ok=True)   # orbax will not create it for a subset
      multi = {"create": False, "multiprocessing_options": ocp.options.MultiprocessingOptions(
          primary_host=me, active_processes={me}, barrier_sync_key_prefix=f"local{me}")}
    return ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, **multi))

  def all_steps(self) -> list[int]:
    """Every saved step, ascending."""
    return sorted(self._mngr.all_steps())

  def latest_step(self) -> Optional[int]:
    """The newest saved step, or None."""
    return self._mngr.latest_step()

  def reached_preemption(self, step: int) -> bool:
    """Whether every host has reached the preemption sync point at `step` (multi-host
    runs under `jax.distributed`; False when that service is off, or for a process's own
    checkpoints, whose steps are not the job's)."""
    if self._local:
      return False
    return self._mngr.reached_preemption(step)

  def save(self, step: int, state: Any) -> None:
    """Saves `state` (a pytree of arrays) as `step`, then its digest; returns when both
    are on disk. Raises CheckpointError if it cannot be written (the older steps stay)."""
    saveable = {k: x for k, x in _leaves(state) if np.size(x) > 0}
    if self._host_arrays:  # orbax saves only globally addressable jax.Arrays across processes
      saveable = jax.device_get(saveable)
    try:
      self._mngr.save(step, args=ocp.args.StandardSave(saveable), force=True)
      self._mngr.wait_until_finished()
      if jax.process_index() != 0 and not self._local:
        return
      step_dir = os.path.join(self.directory, str(step))
      tmp = os.path.join(step_dir, DIGEST + ".tmp")
      with open(tmp, "w") as f:
        json.dump(_files(step_dir), f)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, os.path.join(step_dir, DIGEST))
    except Exception as e:  # orbax and tensorstore wrap OS errors in their own types
      raise CheckpointError(f"cannot write checkpoint {step} in {self.directory}: "
                            f"{_one_line(e)}", reason=_one_line(e)) from e

  def restore(self, step: int, template: Any, to_host: bool = False) -> Any:
    """Restores `step` into the structure, shapes and shardings of `template`.

    `template` may be abstract (`jax.eval_shape`); leaves without a sharding go to the
    first device (so a run saved on N devices restores on one), or with `to_host` every
    leaf comes back as a numpy array (no device memory); empty leaves come back as zeros.
    Raises CheckpointError if the step fails its digest (`damaged` set) or cannot be read.
    """
    problem = verify(os.path.join(self.directory, str(step)))
    if problem:
      raise CheckpointError(f"checkpoint {step} is damaged: {problem}", damaged=True)
    named = _leaves(template)
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    if to_host or self._host_arrays:
      target = {k: np.zeros(x.shape, x.dtype) for k, x in named if np.size(x) > 0}
    else:
      target = {k: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                        sharding=getattr(x, "sharding", None) or default)
                for k, x in named if np.size(x) > 0}
    try:
      saved = self._mngr.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:  # damaged data surfaces as tensorstore / orbax / value errors
      # Without a digest a read error may be damage; with one the bytes are as written,
      # so the error is elsewhere (I/O, memory, a template that does not fit).
      undigested = not os.path.exists(os.path.join(self.directory, str(step), DIGEST))
      raise CheckpointError(f"checkpoint {step} cannot be read: {_one_line(e)}",
                            damaged=undigested) from e
    leaves = [saved[k] if k in saved else np.zeros(x.shape, x.dtype) for k, x in named]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)

  def restore_latest(self, template: Any,
                     warn: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
                     ) -> tuple[Optional[int], Any]:
    """(step, state) of the newest readable step, falling back past damaged ones (each
    moved to `<directory>.damaged/`, with a `warn`ing); (None, None) if there is none.
    A step is damaged when it fails its digest, or has none and orbax cannot read it.
    Raises CheckpointError, naming every step and why, when steps exist but none reads,
    or when an intact step cannot be restored (I/O, memory, template: not damage)."""
    problems = []
    for step in reversed(self.all_steps()):
      try:
        state = self.restore(step, template)
      except CheckpointError as e:
        if not e.damaged:  # intact files that cannot be restored: falling back would hide it
          raise
        problems.append(f"{step}: {e}")
        continue
      if problems:
        damaged = [int(p.split(":")[0]) for p in problems]
        for bad in damaged:
          self._move_aside(bad)
        warn(f"warning: checkpoint {damaged[0]} in {self.directory} cannot be read "
             f"({problems[0].split(': ', 1)[1]}); resuming from checkpoint {step} instead "
             f"(damaged steps moved to {self.directory}.damaged)")
      return step, state
    if problems:
      raise CheckpointError(f"no readable checkpoint in {self.directory}: "
                            + "; ".join(problems) + ". Move the directory away to start over")
    return None, None

  def _move_aside(self, step: int) -> None:
    os.makedirs(self.directory + ".damaged", exist_ok=True)
    dest = os.path.join(self.directory + ".damaged", str(step))
    if os.path.exists(dest):
      shutil.rmtree(dest)
    os.replace(os.path.join(self.directory, str(step)), dest)
    self._mngr.close()
    self._mngr = self._open()

  def close(self) -> None:
    self._mngr.close()


def _one_line(e: BaseException) -> str:
  """The gist of an orbax / tensorstore / OS error: the OS's reason where there is one."""
  text = " ".join(str(e).split()) or type(e).__name__
  if "os_error_code" in text:  # tensorstore: '... Failed writing: "<path>": <reason> [os_error_code=...]'
    return re.sub(r"\s*\[os_error_code=[^\]]*\]", "", text.rsplit(": ", 1)[-1])
  return text[:300]
