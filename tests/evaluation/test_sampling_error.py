"""Sampling error: zero when the data match the policy exactly, growing with mismatch,
and the fitted (MLE) version agreeing with the closed form in the Gaussian case."""

import jax
import jax.numpy as jnp
import numpy as np

from algorithms.common.networks import MLP
from evaluation import sampling_error as se

LOC, SCALE = np.array([0.3, -0.5]), np.array([0.8, 0.4])


def _exact_sample(n, loc, scale, seed=0):
  """n samples whose mean and (ddof=0) std are exactly loc and scale."""
  z = np.random.default_rng(seed).normal(size=(n, len(loc)))
  z = (z - z.mean(0)) / z.std(0)
  return jnp.asarray(loc + scale * z, jnp.float32)


def test_closed_form_is_zero_on_matching_data_and_grows_with_mismatch():
  u = _exact_sample(1000, LOC, SCALE)
  np.testing.assert_allclose(se.gaussian_sampling_error(u, LOC, SCALE), 0.0, atol=1e-6)
  errors = []
  for shift in (0.1, 0.2, 0.4):
    shifted = u + jnp.asarray([shift, 0.0])
    got = se.gaussian_sampling_error(shifted, LOC, SCALE)
    # A mean shift δ in one dimension: KL = δ² / (2σ²).
    np.testing.assert_allclose(got, shift**2 / (2 * SCALE[0] ** 2), rtol=1e-4)
    errors.append(float(got))
  assert errors[0] < errors[1] < errors[2]
  # Too narrow a spread: KL(N(0, s²) ‖ N(0, σ²)) = log(σ/s) + s²/(2σ²) − 1/2 per dimension.
  narrow = _exact_sample(1000, LOC, SCALE / 2)
  np.testing.assert_allclose(se.gaussian_sampling_error(narrow, LOC, SCALE),
                             2 * (np.log(2) + 1 / 8 - 0.5), rtol=1e-4)


def test_fitted_sampling_error_matches_the_closed_form():
  """A state-independent policy (zero observations): the MLE fit is the sample Gaussian."""
  net = MLP((8,), 4, final_scale=0.01)
  params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
  obs = jnp.zeros((512, 3))
  raw = net.apply(params, obs[:1])[0]
  loc, scale = raw[:2], jax.nn.softplus(raw[2:]) + 1e-3
  cfg = se.FitConfig(num_epochs=300, num_minibatches=2, learning_rate=3e-2)

  def fitted(u):
    return float(se.sampling_error(net, params, obs, u, jax.random.PRNGKey(1), config=cfg))

  matched = _exact_sample(512, np.asarray(loc), np.asarray(scale))
  shifted = matched + jnp.asarray([0.3, 0.0]) * scale
  assert abs(fitted(matched)) < 2e-3
  want = float(se.gaussian_sampling_error(shifted, loc, scale))      # 0.045
  np.testing.assert_allclose(fitted(shifted), want, rtol=0.05)
  # Masked-out entries do not count.
  mask = jnp.arange(512) < 256
  both = jnp.concatenate([matched[:256], shifted[256:] + 5.0])
  half = jnp.concatenate([matched[:256], matched[:256]])
  np.testing.assert_allclose(
      se.sampling_error(net, params, obs, both, jax.random.PRNGKey(1), mask, config=cfg),
      se.sampling_error(net, params, obs, half, jax.random.PRNGKey(1), mask, config=cfg),
      atol=1e-3)


def test_fitted_sampling_error_with_a_state_independent_scale():
  """The same closed form with `MeanAndFreeScale` (PPO's state_dependent_std=False): the
  fit moves the mean through the last layer and the spread through the scale vector."""
  from algorithms.common.networks import MeanAndFreeScale
  net = MeanAndFreeScale((8,), 2, final_scale=0.01)
  params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
  obs = jnp.zeros((512, 3))
  raw = net.apply(params, obs[:1])[0]
  loc, scale = raw[:2], jax.nn.softplus(raw[2:]) + 1e-3
  cfg = se.FitConfig(num_epochs=300, num_minibatches=2, learning_rate=3e-2)
  data = _exact_sample(512, np.asarray(loc) + 0.3 * np.asarray(scale), 0.6 * np.asarray(scale))
  want = float(se.gaussian_sampling_error(data, loc, scale))
  got = float(se.sampling_error(net, params, obs, data, jax.random.PRNGKey(1), config=cfg))
  np.testing.assert_allclose(got, want, rtol=0.05)
