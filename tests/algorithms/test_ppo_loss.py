"""The PPO loss against numbers computed by hand (numpy) on linear networks."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import ppo

X = np.array([-1.0, 0.0, 0.5, 2.0])
U = np.array([0.2, -0.1, 0.4, 1.5])
ADV = np.array([1.0, -2.0, 0.5, 3.0])
TARGET = np.array([0.0, 1.0, -0.5, 2.0])
LOG_RATIO = np.array([-0.5, 0.5, -0.05, 0.0])  # new minus old log-probability


def _softplus(x):
  return np.log1p(np.exp(x))


def _gauss_logp(u, loc, scale):
  return -0.5 * ((u - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


@pytest.fixture(scope="module")
def setup():
  config = ppo.PPOConfig(policy_hidden=(), value_hidden=(), clip_eps=0.2, value_coef=0.5,
                         entropy_coef=0.0, normalize_advantage=False)
  policy_net, value_net = ppo.networks(config, types.SimpleNamespace(action_size=1))
  pp = policy_net.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
  vp = value_net.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
  # loc = 0.5 x + 0.1, pre-scale = 0.2 x - 0.3, V = 0.7 x - 0.2
  pp = jax.tree.map(lambda a, b: jnp.asarray(b, a.dtype).reshape(a.shape), pp,
                    {"params": {"Dense_0": {"bias": [0.1, -0.3], "kernel": [[0.5, 0.2]]}}})
  vp = jax.tree.map(lambda a, b: jnp.asarray(b, a.dtype).reshape(a.shape), vp,
                    {"params": {"MLP_0": {"Dense_0": {"bias": [-0.2], "kernel": [[0.7]]}}}})
  params = {"policy": pp, "value": vp}
  loc, scale = 0.5 * X + 0.1, _softplus(0.2 * X - 0.3) + 1e-3
  new_logp = _gauss_logp(U, loc, scale)
  batch = {"obs": jnp.asarray(X[:, None], jnp.float32), "u": jnp.asarray(U[:, None], jnp.float32),
           "log_prob": jnp.asarray(new_logp - LOG_RATIO, jnp.float32),
           "advantage": jnp.asarray(ADV, jnp.float32), "target": jnp.asarray(TARGET, jnp.float32)}
  return config, policy_net, value_net, params, batch, loc, scale


def _expected(adv, eps=0.2):
  ratio = np.exp(LOG_RATIO)
  surrogate = np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)
  value_loss = 0.5 * np.mean((0.7 * X - 0.2 - TARGET) ** 2)
  return -surrogate.mean(), value_loss, ratio


def test_clipped_surrogate_and_value_loss(setup):
  config, pnet, vnet, params, batch, _, _ = setup
  total, aux = ppo.loss(params, batch, jax.random.PRNGKey(1), config, pnet, vnet)
  pl, vl, ratio = _expected(ADV)
  # By hand: min(rA, clip(r)A) = [0.6065, -3.2974, 0.4756, 3.0]
  np.testing.assert_allclose(pl, -np.mean([np.exp(-0.5), -2 * np.exp(0.5), 0.5 * np.exp(-0.05), 3.0]))
  np.testing.assert_allclose(aux["policy_loss"], pl, rtol=1e-5)
  np.testing.assert_allclose(aux["value_loss"], vl, rtol=1e-5)
  np.testing.assert_allclose(total, pl + 0.5 * vl, rtol=1e-5)
  np.testing.assert_allclose(aux["clip_fraction"], 0.5)
  np.testing.assert_allclose(aux["approx_kl"], np.mean((ratio - 1) - LOG_RATIO), rtol=1e-4)


def test_normalized_advantage(setup):
  config, pnet, vnet, params, batch, _, _ = setup
  config = ppo.PPOConfig(**{**config.__dict__, "normalize_advantage": True})
  _, aux = ppo.loss(params, batch, jax.random.PRNGKey(1), config, pnet, vnet)
  pl, _, _ = _expected((ADV - ADV.mean()) / (ADV.std() + 1e-8))
  np.testing.assert_allclose(aux["policy_loss"], pl, rtol=1e-5)


def test_entropy_bonus_is_one_sample_tanh_gaussian_entropy(setup):
  config, pnet, vnet, params, batch, loc, scale = setup
  key = jax.random.PRNGKey(7)
  with_ent = ppo.PPOConfig(**{**config.__dict__, "entropy_coef": 0.1})
  total0, _ = ppo.loss(params, batch, key, config, pnet, vnet)
  total, aux = ppo.loss(params, batch, key, with_ent, pnet, vnet)
  eps = np.asarray(jax.random.normal(key, (4, 1)))[:, 0]
  u = loc + scale * eps
  log_det = np.log(1 - np.tanh(u) ** 2)
  entropy = 0.5 * np.log(2 * np.pi * np.e * scale**2) + log_det
  np.testing.assert_allclose(aux["entropy"], entropy.mean(), rtol=1e-4)
  np.testing.assert_allclose(total, total0 - 0.1 * entropy.mean(), rtol=1e-5)


def test_gradient_is_zero_on_clipped_side(setup):
  # A sample whose ratio is clipped (and on the pessimistic side) gives no policy gradient.
  config, pnet, vnet, params, batch, _, _ = setup
  only0 = jax.tree.map(lambda x: x[:1], batch)  # r = 0.61 < 0.8 with A = +1: unclipped
  grad0 = jax.grad(lambda p: ppo.loss(p, only0, jax.random.PRNGKey(0), config, pnet, vnet)[1]
                   ["policy_loss"])(params)
  assert np.abs(np.asarray(grad0["policy"]["params"]["Dense_0"]["kernel"])).sum() > 0
  clipped = {**only0, "advantage": -only0["advantage"]}  # A = -1, r < 0.8: clip active
  grad1 = jax.grad(lambda p: ppo.loss(p, clipped, jax.random.PRNGKey(0), config, pnet, vnet)[1]
                   ["policy_loss"])(params)
  np.testing.assert_allclose(np.asarray(grad1["policy"]["params"]["Dense_0"]["kernel"]), 0.0)


def test_clipped_value_loss(setup):
  """baselines' PPO2 value clipping: max((V − R)², (V_old + clip(V − V_old, ±c) − R)²)."""
  config, pnet, vnet, params, batch, _, _ = setup
  v = 0.7 * X - 0.2                                     # [-0.9, -0.2, 0.15, 1.2]
  v_old = np.array([-0.5, 0.0, 0.0, 0.0])
  # Clipped V at c = 0.2: [-0.7, -0.2, 0.15, 0.2]; per sample max of the squared errors:
  # (-0.9)² vs (-0.7)² -> 0.81; (-1.2)² both -> 1.44; (0.65)² both -> 0.4225;
  # (-0.8)² vs (-1.8)² -> 3.24.
  want = 0.5 * np.mean([0.81, 1.44, 0.4225, 3.24])
  clip_cfg = ppo.PPOConfig(**{**config.__dict__, "value_clip": 0.2})
  _, aux = ppo.loss(params, {**batch, "value": jnp.asarray(v_old, jnp.float32)},
                    jax.random.PRNGKey(1), clip_cfg, pnet, vnet)
  np.testing.assert_allclose(aux["value_loss"], want, rtol=1e-5)


def test_state_independent_scale_loss_and_gradient(setup):
  """With `state_dependent_std=False` one scale s = softplus(p) + min_std serves every
  state: the surrogate is computed with it, and d(policy loss)/dp is, by hand,
  −mean(A_i · dr_i/dp) over the unclipped samples (all four here), with dr_i/ds =
  r_i · ((u − loc)² / s³ − 1/s) and ds/dp = sigmoid(p)."""
  config, _, vnet, params, batch, loc, _ = setup
  free = ppo.PPOConfig(**{**config.__dict__, "state_dependent_std": False})
  pnet, _ = ppo.networks(free, types.SimpleNamespace(action_size=1))
  pp = pnet.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
  assert set(pp["params"]) == {"MLP_0", "pre_scale"}
  p = -0.3
  pp = {"params": {"MLP_0": {"Dense_0": {"bias": jnp.array([0.1]), "kernel": jnp.array([[0.5]])}},
                   "pre_scale": jnp.array([p])}}
  raw = np.asarray(pnet.apply(pp, batch["obs"]))
  np.testing.assert_allclose(raw[:, 1], p)                     # the same for every state
  scale = _softplus(p) + 1e-3
  new_logp = _gauss_logp(U, loc, scale)
  b = {**batch, "log_prob": jnp.asarray(new_logp - LOG_RATIO, jnp.float32)}
  params = {**params, "policy": pp}
  pl_fn = lambda q: ppo.loss(q, b, jax.random.PRNGKey(1), free, pnet, vnet)[1]["policy_loss"]
  np.testing.assert_allclose(pl_fn(params), _expected(ADV)[0], rtol=1e-5)
  ratio = np.exp(LOG_RATIO)
  # unclipped where min(rA, clip(r)A) = rA: samples 0 (r 0.61, A > 0), 1 (r 1.65, A < 0),
  # 2 (r 0.95 inside the clip) and 3 (r = 1 inside)
  dlogr_ds = (U - loc) ** 2 / scale**3 - 1 / scale
  ds_dp = 1 / (1 + np.exp(-p))
  want = -np.mean(ADV * ratio * dlogr_ds) * ds_dp
  got = jax.grad(pl_fn)(params)["policy"]["params"]["pre_scale"]
  np.testing.assert_allclose(np.asarray(got)[0], want, rtol=1e-4)


def test_props_and_mdpo_take_the_state_independent_scale():
  """PROPS and on-policy MDPO build their policy through ppo.networks with the flag."""
  import envs
  from algorithms import mdpo, props
  env = envs.make("brax/inverted_pendulum", episode_length=10)
  for make, cfg in ((ppo.make_agent, ppo.PPOConfig(num_envs=2, unroll_length=2, num_minibatches=1)),
                    (props.make_agent, props.PROPSConfig(total_steps=64, sampling_error_epochs=1)),
                    (mdpo.make_agent, mdpo.MDPOConfig(num_envs=2, unroll_length=8, total_steps=64))):
    for flag in (True, False):
      agent = make(type(cfg)(**{**cfg.__dict__, "state_dependent_std": flag}), env)
      state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
      names = set(agent.policy_params(state)["policy"]["params"])
      assert ("pre_scale" in names) is (not flag), (make, flag, names)
      if make is props.make_agent:   # traces the update, its sampling-error fit included
        jax.eval_shape(agent.update, state)
