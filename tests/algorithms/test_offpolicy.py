"""SAC, TD3 and off-policy MDPO: losses against hand-computed numbers, update rules."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms import mdpo_offpolicy, sac, td3
from algorithms.common.networks import polyak

ENV = types.SimpleNamespace(observation_size=1, action_size=1)
OBS = np.array([-1.0, 0.5, 2.0])
ACT = np.array([0.3, -0.6, 0.9])
REW = np.array([1.0, 0.0, -0.5])
DISC = np.array([1.0, 0.0, 1.0])  # the second transition is terminal
NEXT = np.array([0.0, 1.0, -2.0])
BATCH = {k: jnp.asarray(v, jnp.float32) for k, v in
         dict(obs=OBS[:, None], action=ACT[:, None], reward=REW, discount=DISC,
              next_obs=NEXT[:, None]).items()}


def _set(params, values):
  return jax.tree.map(lambda a, b: jnp.asarray(b, a.dtype).reshape(a.shape), params, values)


def _policy_params(net, kernel, bias):
  p = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
  return _set(p, {"params": {"Dense_0": {"bias": bias, "kernel": [kernel]}}})


def _q_params(net, w1, w2):
  """Q_i(s, a) = w_i[0] s + w_i[1] a + w_i[2]."""
  p = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)), jnp.zeros((1, 1)))
  return _set(p, {"params": {
      "MLP_0": {"Dense_0": {"bias": [w1[2]], "kernel": [[w1[0]], [w1[1]]]}},
      "MLP_1": {"Dense_0": {"bias": [w2[2]], "kernel": [[w2[0]], [w2[1]]]}}}})


def _q(w, s, a):
  return w[0] * s + w[1] * a + w[2]


def _softplus(x):
  return np.log1p(np.exp(x))


def _tanh_gauss(key, loc, scale, n):
  """The reparameterised sample and its log-density, as distrax draws them."""
  eps = np.asarray(jax.random.normal(key, (n, 1)))[:, 0]
  u = loc + scale * eps
  logp = (-0.5 * eps**2 - np.log(scale) - 0.5 * np.log(2 * np.pi)) - np.log(1 - np.tanh(u) ** 2)
  return u, logp


W1, W2 = (0.5, -1.0, 0.2), (0.4, 0.3, -0.1)
TW1, TW2 = (0.6, -0.8, 0.0), (0.2, 0.5, 0.1)


@pytest.fixture(scope="module")
def sac_setup():
  config = sac.SACConfig(hidden=(), discount=0.9)
  policy_net, q_net = sac.networks(config, 1)
  actor = _policy_params(policy_net, [0.5, 0.2], [0.1, -0.3])  # loc = .5s+.1, pre = .2s-.3
  return config, policy_net, q_net, actor, _q_params(q_net, W1, W2), _q_params(q_net, TW1, TW2)


def test_sac_critic_loss(sac_setup):
  config, pnet, qnet, actor, q, tq = sac_setup
  key, log_alpha = jax.random.PRNGKey(3), jnp.log(0.5)
  loss, _ = sac.critic_loss(q, tq, actor, log_alpha, BATCH, key, config, pnet, qnet)
  u, logp = _tanh_gauss(key, 0.5 * NEXT + 0.1, _softplus(0.2 * NEXT - 0.3) + 1e-3, 3)
  a2 = np.tanh(u)
  soft_v = np.minimum(_q(TW1, NEXT, a2), _q(TW2, NEXT, a2)) - 0.5 * logp
  y = REW + 0.9 * DISC * soft_v
  expected = 0.5 * (np.mean((_q(W1, OBS, ACT) - y) ** 2) + np.mean((_q(W2, OBS, ACT) - y) ** 2))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_sac_actor_loss(sac_setup):
  config, pnet, qnet, actor, q, _ = sac_setup
  key, log_alpha = jax.random.PRNGKey(4), jnp.log(0.2)
  loss, aux = sac.actor_loss(actor, q, log_alpha, BATCH, key, config, pnet, qnet)
  u, logp = _tanh_gauss(key, 0.5 * OBS + 0.1, _softplus(0.2 * OBS - 0.3) + 1e-3, 3)
  a = np.tanh(u)
  expected = np.mean(0.2 * logp - np.minimum(_q(W1, OBS, a), _q(W2, OBS, a)))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(aux["log_prob"], logp, rtol=1e-4)


@pytest.mark.parametrize("log_prob,direction", [(0.5, +1), (-3.0, -1)])
def test_sac_temperature_moves_toward_target_entropy(log_prob, direction):
  # Entropy is -log π: 0.5 -> -0.5, below the target 1, so α must rise; -3 -> 3, above
  # it, so α must fall. dJ/dlog α = -(log π + H̄).
  target_entropy = 1.0
  log_alpha = jnp.float32(0.0)
  lp = jnp.full((8,), log_prob)
  grad = jax.grad(sac.alpha_loss)(log_alpha, lp, target_entropy)
  np.testing.assert_allclose(grad, -(log_prob + target_entropy), rtol=1e-6)
  opt = optax.adam(1e-2)
  upd, _ = opt.update(grad, opt.init(log_alpha))
  assert np.sign(float(optax.apply_updates(log_alpha, upd))) == direction


def test_polyak():
  target, online = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, -2.0])}
  np.testing.assert_allclose(polyak(target, online, 0.1)["w"], [1.2, 1.6], rtol=1e-6)


@pytest.fixture(scope="module")
def td3_setup():
  config = td3.TD3Config(hidden=(), discount=0.9, target_noise=0.2, target_noise_clip=0.5)
  actor_net, q_net = td3.networks(config, 1)
  p = actor_net.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
  target_actor = _set(p, {"params": {"Dense_0": {"bias": [0.2], "kernel": [[0.7]]}}})
  return config, actor_net, q_net, target_actor, _q_params(q_net, W1, W2), _q_params(q_net, TW1, TW2)


def test_td3_critic_loss_with_target_smoothing(td3_setup):
  config, anet, qnet, target_actor, q, tq = td3_setup
  key = jax.random.PRNGKey(5)
  loss, _ = td3.critic_loss(q, tq, target_actor, BATCH, key, config, anet, qnet)
  noise = np.clip(0.2 * np.asarray(jax.random.normal(key, (3, 1)))[:, 0], -0.5, 0.5)
  a2 = np.clip(np.tanh(0.7 * NEXT + 0.2) + noise, -1, 1)
  y = REW + 0.9 * DISC * np.minimum(_q(TW1, NEXT, a2), _q(TW2, NEXT, a2))
  expected = np.mean((_q(W1, OBS, ACT) - y) ** 2) + np.mean((_q(W2, OBS, ACT) - y) ** 2)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_td3_actor_loss_uses_q1(td3_setup):
  _, anet, qnet, actor, q, _ = td3_setup
  loss = td3.actor_loss(actor, q, BATCH, anet, qnet)
  np.testing.assert_allclose(loss, -np.mean(_q(W1, OBS, np.tanh(0.7 * OBS + 0.2))), rtol=1e-5)


def test_td3_delayed_actor_and_target_updates():
  config = td3.TD3Config(hidden=(8,), policy_delay=2)
  learner = td3.make_learner(config, ENV)
  state = learner.init(jax.random.PRNGKey(0))
  update = jax.jit(learner.update)
  changed = []
  for i in range(4):
    new, _ = update(state, BATCH, jax.random.PRNGKey(i))
    diff = lambda a, b: any(not np.array_equal(x, y) for x, y in
                            zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    changed.append({k: diff(new[k], state[k]) for k in ("q", "actor", "target_actor", "target_q")})
    state = new
  assert [c["q"] for c in changed] == [True] * 4
  for k in ("actor", "target_actor", "target_q"):
    assert [c[k] for c in changed] == [False, True, False, True], k


@pytest.fixture(scope="module")
def mdpo_setup():
  config = mdpo_offpolicy.MDPOOffConfig(hidden=(), entropy_coef=0.2)
  policy_net, q_net, _ = mdpo_offpolicy.networks(config, 1)
  actor = _policy_params(policy_net, [0.5, 0.2], [0.1, -0.3])
  old = _policy_params(policy_net, [0.3, -0.1], [0.0, 0.2])
  return config, policy_net, q_net, actor, old, _q_params(q_net, W1, W2)


def test_mdpo_kl_term_vanishes_at_previous_policy(mdpo_setup):
  config, pnet, qnet, actor, _, q = mdpo_setup
  key = jax.random.PRNGKey(6)
  loss, aux = mdpo_offpolicy.actor_loss(actor, actor, q, BATCH, key, 0.5, config, pnet, qnet)
  assert float(aux["kl"]) == 0.0
  # With π_θk = π_θ the loss is SAC's with α = λ.
  sac_loss, _ = sac.actor_loss(actor, q, jnp.log(0.2), BATCH, key,
                               sac.SACConfig(hidden=()), pnet, qnet)
  np.testing.assert_allclose(loss, sac_loss, rtol=1e-5)


def test_mdpo_actor_loss_hand_computed(mdpo_setup):
  config, pnet, qnet, actor, old, q = mdpo_setup
  key, tk = jax.random.PRNGKey(7), 0.5
  loss, aux = mdpo_offpolicy.actor_loss(actor, old, q, BATCH, key, tk, config, pnet, qnet)
  loc, scale = 0.5 * OBS + 0.1, _softplus(0.2 * OBS - 0.3) + 1e-3
  u, logp = _tanh_gauss(key, loc, scale, 3)
  old_loc, old_scale = 0.3 * OBS, _softplus(-0.1 * OBS + 0.2) + 1e-3
  old_logp = (-0.5 * ((u - old_loc) / old_scale) ** 2 - np.log(old_scale)
              - 0.5 * np.log(2 * np.pi)) - np.log(1 - np.tanh(u) ** 2)
  a = np.tanh(u)
  expected = np.mean((logp - old_logp) / tk + 0.2 * old_logp
                     - np.minimum(_q(W1, OBS, a), _q(W2, OBS, a)))
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
  np.testing.assert_allclose(aux["kl"], np.mean(logp - old_logp), rtol=1e-4)


def test_mdpo_step_size_schedules():
  const = mdpo_offpolicy.MDPOOffConfig(tk=0.7)
  assert float(mdpo_offpolicy.step_size(const, jnp.int32(123))) == pytest.approx(0.7)
  lin = mdpo_offpolicy.MDPOOffConfig(tk_schedule="linear", num_iterations=10)
  values = [float(mdpo_offpolicy.step_size(lin, jnp.int32(k))) for k in (0, 5, 9, 50)]
  np.testing.assert_allclose(values, [1.0, 0.5, 0.1, 0.1], rtol=1e-6)
  with pytest.raises(ValueError, match="tk_schedule"):
    mdpo_offpolicy.MDPOOffConfig(tk_schedule="cosine").validate()
  # K follows the run: (112640 − 10240) env steps in updates of 16 × 4 at UTD 1 are
  # 102400 gradient steps, 100 iterations of m = 1024; t_k reaches 1/K at the last one.
  run = mdpo_offpolicy.MDPOOffConfig(tk_schedule="linear", total_steps=112_640,
                                     learning_starts=10_240, iteration_length=1024)
  assert run.tk_iterations == 100
  np.testing.assert_allclose(float(mdpo_offpolicy.step_size(run, jnp.int32(99))), 0.01, rtol=1e-5)
  with pytest.raises(ValueError, match="anneals over the run"):
    mdpo_offpolicy.MDPOOffConfig(tk_schedule="linear").validate()


def test_mdpo_previous_policy_refreshed_every_m_steps():
  config = mdpo_offpolicy.MDPOOffConfig(hidden=(8,), iteration_length=3)
  learner = mdpo_offpolicy.make_learner(config, ENV)
  state = learner.init(jax.random.PRNGKey(0))
  first = state["actor"]
  update = jax.jit(learner.update)
  for i in range(3):
    state, _ = update(state, BATCH, jax.random.PRNGKey(i))
    same = jax.tree.map(np.array_equal, state["old_actor"], first if i < 2 else state["actor"])
    assert all(jax.tree.leaves(same)), i
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, state["actor"], first)))
