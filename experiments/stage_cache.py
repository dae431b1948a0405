"""Finished stages of a long job, kept on disk so that a re-run skips them.

A job (the OPE sweep) computes stage after stage: true values, datasets, FQE, intervals.
`StageCache.get(name, compute)` returns the stage's saved result when one exists for the
same job settings (`fingerprint`, e.g. its flags) and reads back intact, and otherwise
computes and saves it. So an interrupted job, re-run with the same command, resumes after
its last finished stage. A saved stage is a nested dict of arrays, written atomically
(`<name>.npz` then `<name>.json` with the fingerprint and the .npz's CRC-32); one that
fails its check is computed again, with a warning.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from typing import Any, Callable

import numpy as np


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
  out = {}
  for k, v in tree.items():
    if "/" in k:
      raise ValueError(f"stage keys may not hold '/': {k!r}")
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = np.asarray(v)
  return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
  out: dict = {}
  for key, v in flat.items():
    *path, leaf = key.split("/")
    node = out
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = v
  return out


def _crc(path: str) -> int:
  with open(path, "rb") as f:
    return zlib.crc32(f.read())


class StageCache:
  """Stage results under `directory`, valid for one `fingerprint` (any JSON value)."""

  def __init__(self, directory: str, fingerprint: Any):
    self.directory = directory
    self.fingerprint = json.loads(json.dumps(fingerprint))
    os.makedirs(directory, exist_ok=True)

  def load(self, name: str):
    """The saved nested dict of `name`, or None (absent, other settings, or damaged)."""
    npz, meta_path = (os.path.join(self.directory, f"{name}{e}") for e in (".npz", ".json"))
    if not (os.path.exists(npz) and os.path.exists(meta_path)):
      return None
    try:
      with open(meta_path) as f:
        meta = json.load(f)
      if meta.get("fingerprint") != self.fingerprint:
        return None
      if _crc(npz) != meta.get("crc32"):
        raise ValueError("its CRC-32 differs from the one written with it")
      with np.load(npz) as f:
        return _unflatten({k: f[k] for k in f.files})
    except Exception as e:  # pylint: disable=broad-except
      print(f"warning: saved stage {npz} cannot be used ({e}); computing it again",
            file=sys.stderr)
      return None

  def save(self, name: str, result: dict) -> None:
    """Writes `result` (nested dict of arrays) as stage `name`, atomically."""
    npz, meta_path = (os.path.join(self.directory, f"{name}{e}") for e in (".npz", ".json"))
    for path, write in ((npz, lambda f: np.savez(f, **_flatten(result))),
                        (meta_path, lambda f: f.write(json.dumps(
                            {"fingerprint": self.fingerprint, "crc32": _crc(npz)}).encode()))):
      with open(path + ".tmp", "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
      os.replace(path + ".tmp", path)

  def get(self, name: str, compute: Callable[[], dict]) -> dict:
    """The saved stage `name`, or `compute()`'s result, saved. -> nested dict of numpy arrays."""
    saved = self.load(name)
    if saved is not None:
      print(f"stage {name}: read from {self.directory}", file=sys.stderr)
      return saved
    result = _unflatten(_flatten(compute()))
    self.save(name, result)
    return result
