"""Divergence checks: codes on hand-made parameters and metrics, and the first bad
iteration inside a scanned, vmapped run."""

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.common import divergence
from algorithms.common.agent import Agent


def test_check_codes():
  params = {"w": jnp.ones((2, 3)), "step": jnp.int32(7)}
  metrics = {"value_loss": 5.0, "approx_kl": 0.01, "entropy": -1e20, "episode_return": jnp.nan}
  assert divergence.watched_metrics(metrics) == ["approx_kl", "value_loss"]
  assert int(divergence.check(params, metrics, 1e10)) == 0  # entropy is not watched, NaN is no sign
  assert int(divergence.check(params, {**metrics, "value_loss": -2e10}, 1e10)) == 3
  assert int(divergence.check(params, {**metrics, "approx_kl": jnp.inf}, 1e10)) == 2
  assert int(divergence.check(params, {**metrics, "approx_kl": 2e32}, None)) == 0
  bad = {**params, "w": params["w"].at[1, 2].set(jnp.inf)}
  assert int(divergence.check(bad, {**metrics, "approx_kl": 2e32}, 1e10)) == 1  # params first
  assert divergence.describe(3, ["approx_kl", "value_loss"], 1e10) == "|value_loss| > 1e+10"
  assert divergence.describe(1, [], 1e10) == "non-finite policy parameters"


def test_first_bad_iteration_per_seed():
  """A toy agent whose parameter doubles each iteration and whose loss is its square:
  seed s starting at 10**s passes |loss| > 1e10 at the first iteration t with
  (10**s * 2**(t+1))**2 > 1e10; seed 0 (start 0) never does."""
  agent = Agent(init=None, update=lambda p: (2 * p, {"loss": (2 * p) ** 2}),
                policy_params=lambda p: p, make_policy=None, log_prob=None, steps_per_update=1)
  starts = jnp.array([0.0, 1.0, 10.0, 1e3])
  run = jax.jit(jax.vmap(lambda p: divergence.run_guarded_updates(agent, p, 20, 1e10)))
  final, metrics, first_bad, code = run(starts)
  expected = [next((t for t in range(20) if (s * 2.0 ** (t + 1)) ** 2 > 1e10), -1)
              for s in [0.0, 1.0, 10.0, 1e3]]
  assert expected[0] == divergence.HEALTHY and expected[1] > expected[2] > expected[3] >= 0
  np.testing.assert_array_equal(first_bad, expected)
  np.testing.assert_array_equal(code, [0, 2, 2, 2])
  assert metrics["loss"].shape == (4, 20)
  np.testing.assert_allclose(final, starts * 2.0 ** 20)  # not frozen here: the runner does that
