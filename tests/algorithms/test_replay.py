"""The in-jit replay buffer: wrap-around, uniform sampling, truncation vs termination."""

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.common import replay
from algorithms.common.rollout import Transition


def _items(values):
  v = jnp.asarray(values, jnp.float32)
  return {"obs": v[:, None], "action": v[:, None], "reward": v, "discount": jnp.ones_like(v),
          "next_obs": v[:, None]}


def test_wrap_around_keeps_the_newest():
  buf = replay.make_buffer(capacity=5, batch_size=4)
  state = buf.init(replay.example_item(1, 1))
  state = jax.jit(buf.add)(state, _items([1, 2, 3]))
  assert int(state.current_index) == 3 and not bool(state.is_full)
  state = jax.jit(buf.add)(state, _items([4, 5, 6, 7]))
  assert int(state.current_index) == 2 and bool(state.is_full)
  # Slots 0, 1 overwritten by 6, 7; the oldest two (1, 2) are gone.
  np.testing.assert_array_equal(np.asarray(state.experience["reward"])[0], [6, 7, 3, 4, 5])


def test_sampling_is_uniform_over_filled_slots():
  buf = replay.make_buffer(capacity=5000, batch_size=4000)
  state = buf.add(buf.init(replay.example_item(1, 1)), _items(np.arange(1, 11)))
  sample = jax.jit(buf.sample)(state, jax.random.PRNGKey(0)).experience["reward"]
  values, counts = np.unique(np.asarray(sample), return_counts=True)
  np.testing.assert_array_equal(values, np.arange(1, 11))  # never an empty (zero) slot
  assert np.abs(counts / 4000 - 0.1).max() < 0.02


def test_sampling_under_vmap_over_seeds():
  buf = replay.make_buffer(capacity=8, batch_size=3)
  init = jax.vmap(lambda _: buf.init(replay.example_item(1, 1)))(jnp.arange(2))
  state = jax.vmap(buf.add)(init, jax.tree.map(lambda x: jnp.stack([x, x + 100]), _items([1, 2])))
  sample = jax.vmap(buf.sample)(state, jax.random.split(jax.random.PRNGKey(0), 2))
  r = np.asarray(sample.experience["reward"])
  assert r.shape == (2, 3) and set(r[0]) <= {1, 2} and set(r[1]) <= {101, 102}


def test_items_bootstrap_truncation_not_termination():
  t = lambda *v: jnp.asarray(v)[:, None]  # [T=2, B=1]
  tr = Transition(obs=jnp.zeros((2, 1, 3)), action=jnp.zeros((2, 1, 1)), extras={},
                  reward=t(1.0, 2.0), terminated=t(True, False), truncated=t(False, True),
                  next_obs=jnp.arange(6.0).reshape(2, 1, 3), episode_return=t(0.0, 0.0))
  items = replay.items(tr)
  np.testing.assert_array_equal(items["discount"], [0.0, 1.0])
  np.testing.assert_array_equal(items["next_obs"], np.arange(6.0).reshape(2, 3))
  assert items["obs"].shape == (2, 3)
