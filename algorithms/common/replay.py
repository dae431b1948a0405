"""Replay buffer inside the jitted training loop (flashbax's item buffer).

flashbax keeps the buffer as an explicit pytree with pure `init/add/sample`, so the
whole off-policy run stays one `train(key)` that vmaps over seeds. Items are
transitions `{obs, action, reward, discount, next_obs}` where `discount` is
1 − terminated (0 only at true terminal states) and `next_obs` is the successor before
any auto-reset: truncated steps are stored like any other and bootstrap from it.
"""

from __future__ import annotations

import flashbax as fbx
import jax
import jax.numpy as jnp

from algorithms.common.rollout import Transition


def make_buffer(capacity: int, batch_size: int):
  """A uniform, with-replacement ring buffer of `capacity` items sampling `batch_size`."""
  return fbx.make_item_buffer(max_length=capacity, min_length=1,
                              sample_batch_size=batch_size, add_batches=True)


def example_item(obs_size: int, action_size: int) -> dict:
  """One transition of zeros, the template `buffer.init` takes."""
  return {"obs": jnp.zeros(obs_size), "action": jnp.zeros(action_size),
          "reward": jnp.zeros(()), "discount": jnp.zeros(()), "next_obs": jnp.zeros(obs_size)}


def items(tr: Transition) -> dict:
  """Transition [T, B, ...] -> replay items flattened to [T*B, ...]."""
  out = {"obs": tr.obs, "action": tr.action, "reward": tr.reward,
         "discount": 1.0 - tr.terminated.astype(jnp.float32), "next_obs": tr.next_obs}
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), out)
