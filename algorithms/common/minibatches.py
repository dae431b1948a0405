"""Shuffled minibatches of a batch, for scanning SGD epochs."""

from __future__ import annotations

from typing import Any

import jax


def shuffled_minibatches(key: jax.Array, batch: Any, num: int) -> Any:
  """Every leaf [n, ...] permuted by one random permutation and split -> [num, n // num, ...]
  (the last n mod num entries of the permutation are left out)."""
  n = jax.tree.leaves(batch)[0].shape[0]
  size = n // num
  perm = jax.random.permutation(key, n)[: size * num]
  return jax.tree.map(lambda x: x[perm].reshape((num, size) + x.shape[1:]), batch)
