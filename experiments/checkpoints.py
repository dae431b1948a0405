"""Orbax checkpoints of vmapped train states.

MJX physics states hold zero-size arrays, which orbax refuses to save; they carry no
data, so only the non-empty leaves are saved (keyed by their tree path) and the empty
ones are rebuilt from the template on restore.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp


def _leaves(tree) -> list[tuple[str, Any]]:
  return [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


class Checkpointer:
  """Keeps the last `max_to_keep` (None: all) states under `directory`, by integer step."""

  def __init__(self, directory: str, max_to_keep: Optional[int] = 2):
    self._mngr = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep))

  def all_steps(self) -> list[int]:
    """Every saved step, ascending."""
    return sorted(self._mngr.all_steps())

  def latest_step(self) -> Optional[int]:
    """The newest saved step, or None."""
    return self._mngr.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Saves `state` (a pytree of arrays) as `step`; returns when it is on disk."""
    saveable = {k: x for k, x in _leaves(state) if np.size(x) > 0}
    self._mngr.save(step, args=ocp.args.StandardSave(saveable))
    self._mngr.wait_until_finished()

  def restore(self, step: int, template: Any) -> Any:
    """Restores `step` into the structure, shapes and shardings of `template`.

    `template` may be abstract (`jax.eval_shape`); leaves without a sharding go to the
    first device (so a run saved on N devices restores on one); empty leaves come
    back as zeros.
    """
    named = _leaves(template)
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = {k: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                        sharding=getattr(x, "sharding", None) or default)
                for k, x in named if np.size(x) > 0}
    saved = self._mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    leaves = [saved[k] if k in saved else np.zeros(x.shape, x.dtype) for k, x in named]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)

  def close(self) -> None:
    self._mngr.close()
