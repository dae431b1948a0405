"""Shuffled minibatches of a batch, for scanning SGD epochs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def shuffled_minibatches(key: jax.Array, batch: Any, num: int) -> Any:
  """Every leaf [n, ...] permuted by one random permutation and split -> [num, n // num, ...]
  (the last n mod num entries of the permutation are left out)."""
  n = jax.tree.leaves(batch)[0].shape[0]
  size = n // num
  perm = jax.random.permutation(key, n)[: size * num]
  return jax.tree.map(lambda x: x[perm].reshape((num, size) + x.shape[1:]), batch)


def valid_minibatches(key: jax.Array, batch: Any, mask: jax.Array, size: int) -> tuple[Any, jax.Array]:
  """Minibatches of `size` drawn from the valid entries only.

  The valid entries (mask [n] True) are put first in a random order, the invalid ones
  after them, and the order is cut into ⌈n / size⌉ minibatches of `size`: while few
  entries are valid, there are fewer full minibatches instead of as many nearly empty
  ones (PROPS's code: a fixed minibatch size over the filled part of its buffer).

  Returns (minibatches: every leaf [C, size, ...] plus 'mask' [C, size] (valid entries),
  active [C] (bool: the minibatch holds at least one valid entry)).
  """
  n = mask.shape[0]
  chunks = -(-n // size)
  order = jnp.argsort(jnp.where(mask, jax.random.uniform(key, (n,)), 2.0))
  order = jnp.concatenate([order, jnp.full((chunks * size - n,), n, order.dtype)])
  padded = lambda x: jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)])
  mbs = jax.tree.map(lambda x: padded(x)[order].reshape((chunks, size) + x.shape[1:]),
                     {**batch, "mask": mask})
  return mbs, mbs["mask"].any(axis=1)
