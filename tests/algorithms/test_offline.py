"""Offline agents' shared pieces and TD3+BC's loss, against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import td3_bc
from algorithms.common import offline
from algorithms.common.networks import MLP, QNet


def _dataset():
  """2 trajectories of horizon 4: the first terminates at t = 2 (t = 3 is padding), the
  second is truncated at the horizon (t = 3)."""
  obs = np.arange(2 * 4 * 2, dtype=np.float32).reshape(2, 4, 2)
  action = np.linspace(-1, 1, 2 * 4).reshape(2, 4, 1).astype(np.float32)
  reward = np.array([[1, 2, 3, 0], [4, 5, 6, 7]], np.float32)
  terminated = np.array([[0, 0, 1, 0], [0, 0, 0, 0]], bool)
  truncated = np.array([[0, 0, 0, 0], [0, 0, 0, 1]], bool)
  return dict(obs=obs, action=action, reward=reward, terminated=terminated, truncated=truncated)


def test_transitions_drop_padding_and_truncated_steps():
  d = _dataset()
  tr = offline.transitions(d)
  # row 0: t = 0, 1, 2 (t = 2 terminal); row 1: t = 0, 1, 2 (t = 3 truncated: no next obs)
  np.testing.assert_array_equal(tr["trajectory"], [0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(tr["reward"], [1, 2, 3, 4, 5, 6])
  np.testing.assert_array_equal(tr["discount"], [1, 1, 0, 1, 1, 1])
  np.testing.assert_array_equal(tr["obs"], d["obs"][[0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2]])
  np.testing.assert_array_equal(tr["next_obs"][[0, 1, 3, 4, 5]],
                                d["obs"][[0, 0, 1, 1, 1], [1, 2, 1, 2, 3]])
  np.testing.assert_array_equal(tr["returns"], [6, 22])


def test_normalizer_is_td3_bc_s():
  x = np.random.default_rng(0).normal(3.0, 2.0, (100, 3)).astype(np.float32)
  n = offline.Normalizer.of(x, 1e-3)
  expected = (x - x.mean(0)) / (x.std(0) + 1e-3)
  np.testing.assert_allclose(n.normalize(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-5)


def test_weighted_sampling_follows_the_weights():
  """Trajectory weights 0 : 1 : 2 : 1 (trajectory 1 has two transitions, the others one):
  each transition is drawn ∝ its trajectory's weight."""
  tr = {"trajectory": np.array([0, 1, 1, 2, 3]), "obs": np.zeros((5, 1))}
  with np.errstate(divide="ignore"):
    logits = np.log([0.0, 1.0, 2.0, 1.0])
  s = offline.trajectory_sampler(tr, logits)
  # trajectory shares ∝ count × weight = 0, 2, 2, 1
  np.testing.assert_allclose(s["cdf"], [0.0, 0.4, 0.8, 1.0])
  np.testing.assert_array_equal(s["start"], [0, 1, 3, 4])
  np.testing.assert_array_equal(s["count"], [1, 2, 1, 1])
  data = {"obs": jnp.zeros((5, 1)), "reward": jnp.arange(5.0),
          "sampler": jax.tree.map(jnp.asarray, s)}
  batch = jax.jit(lambda k: offline.sample(data, k, 40000))(jax.random.PRNGKey(0))
  freq = np.bincount(np.asarray(batch["reward"], int), minlength=5) / 40000
  np.testing.assert_allclose(freq, [0.0, 0.2, 0.2, 0.4, 0.2], atol=0.012)
  assert "sampler" not in batch
  uniform = offline.sample({k: v for k, v in data.items() if k != "sampler"},
                           jax.random.PRNGKey(1), 20000)
  np.testing.assert_allclose(np.bincount(np.asarray(uniform["reward"], int)) / 20000, 0.2,
                             atol=0.015)


def _linear(w, b):
  return {"params": {"Dense_0": {"kernel": jnp.asarray(w, jnp.float32),
                                 "bias": jnp.asarray(b, jnp.float32)}}}


def test_td3_bc_actor_loss_by_hand():
  obs = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 1.0]], np.float32)
  action = np.array([[0.3], [-0.8], [0.1]], np.float32)
  wa, ba = np.array([[0.4], [0.2]]), np.array([0.1])
  w1, b1 = np.array([[1.0], [-1.0], [2.0]]), np.array([0.5])   # Q1 on [s, a]
  w2, b2 = np.array([[0.0], [3.0], [1.0]]), np.array([-1.0])   # Q2 (unused by the actor)
  actor_params = _linear(wa, ba)
  q_params = {"params": {"MLP_0": _linear(w1, b1)["params"], "MLP_1": _linear(w2, b2)["params"]}}
  actor_net, q_net = MLP((), 1, "relu"), QNet((), 2, "relu")
  loss, aux = td3_bc.actor_loss(actor_params, q_params, {"obs": obs, "action": action},
                                actor_net, q_net, alpha=2.5)
  # by hand: pi = tanh(s·wa + ba), Q1 = [s, pi]·w1 + b1, λ = 2.5 / mean|Q1|
  pi = np.tanh(obs @ wa + ba)
  q1 = (np.concatenate([obs, pi], 1) @ w1 + b1)[:, 0]
  lam = 2.5 / np.abs(q1).mean()
  expected = -lam * q1.mean() + ((pi - action) ** 2).mean()
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert float(aux["lambda"]) == pytest.approx(lam, rel=1e-5)
  # λ carries no gradient: d loss / d ba = −λ mean(dQ1/dpi · (1 − pi²)) + mean(2 (pi − a)(1 − pi²))
  g = jax.grad(lambda p: td3_bc.actor_loss(p, q_params, {"obs": obs, "action": action},
                                           actor_net, q_net, 2.5)[0])(actor_params)
  dpi = 1 - pi[:, 0] ** 2
  expected_gb = -lam * np.mean(w1[2, 0] * dpi) + np.mean(2 * (pi[:, 0] - action[:, 0]) * dpi)
  assert float(g["params"]["Dense_0"]["bias"][0]) == pytest.approx(expected_gb, rel=1e-4)


def test_iql_losses_by_hand():
  from algorithms import iql  # pylint: disable=import-outside-toplevel
  from algorithms.common.networks import ValueNet  # pylint: disable=import-outside-toplevel
  assert float(iql.expectile_loss(jnp.array([1.0, -2.0]), 0.7)) == pytest.approx(
      (0.7 * 1 + 0.3 * 4) / 2)
  obs = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 1.0]], np.float32)
  action = np.array([[0.3], [-0.8], [0.1]], np.float32)
  batch = {"obs": obs, "action": action, "reward": np.array([1.0, 0.0, -1.0], np.float32),
           "next_obs": obs[::-1].copy(), "discount": np.array([1.0, 0.0, 1.0], np.float32)}
  w1, b1 = np.array([[1.0], [-1.0], [2.0]]), np.array([0.5])
  w2, b2 = np.array([[0.0], [3.0], [1.0]]), np.array([-1.0])
  q_params = {"params": {"MLP_0": _linear(w1, b1)["params"], "MLP_1": _linear(w2, b2)["params"]}}
  wv, bv = np.array([[0.5], [0.25]]), np.array([-5.0])
  v_params = {"params": {"MLP_0": _linear(wv, bv)["params"]}}
  wp, bp, log_std = np.array([[0.4], [0.2]]), np.array([0.1]), np.array([-0.5])
  pi_params = {"params": {"Dense_0": {"kernel": jnp.asarray(wp, jnp.float32),
                                      "bias": jnp.asarray(bp, jnp.float32)},
                          "log_std": jnp.asarray(log_std, jnp.float32)}}
  v_net, q_net = ValueNet((), "relu"), QNet((), 2, "relu")
  pi_net = iql.GaussianPolicy((), 1, "relu")
  sa = np.concatenate([obs, action], 1)
  q = np.minimum(sa @ w1 + b1, sa @ w2 + b2)[:, 0]
  v = (obs @ wv + bv)[:, 0]
  u = q - v
  expected_v = np.mean(np.where(u < 0, 0.3, 0.7) * u ** 2)
  loss, _ = iql.value_loss(v_params, q_params, batch, v_net, q_net, 0.7)
  assert float(loss) == pytest.approx(expected_v, rel=1e-5)
  mean = np.tanh(obs @ wp + bp)[:, 0]
  logp = -0.5 * ((action[:, 0] - mean) / np.exp(-0.5)) ** 2 + 0.5 - 0.5 * np.log(2 * np.pi)
  weight = np.minimum(np.exp(3.0 * u), 100.0)
  assert weight.max() == 100.0  # the clip is exercised
  loss, _ = iql.actor_loss(pi_params, v_params, q_params, batch, pi_net, v_net, q_net, 3.0, 100.0)
  assert float(loss) == pytest.approx(-np.mean(weight * logp), rel=1e-5)
  next_v = (batch["next_obs"] @ wv + bv)[:, 0]
  y = batch["reward"] + 0.99 * batch["discount"] * next_v
  expected_q = np.mean(((sa @ w1 + b1)[:, 0] - y) ** 2 + ((sa @ w2 + b2)[:, 0] - y) ** 2)
  loss, _ = iql.critic_loss(q_params, v_params, batch, v_net, q_net, 0.99)
  assert float(loss) == pytest.approx(expected_q, rel=1e-5)


def test_return_weighting_by_hand():
  """RW (Hong et al. 2023): trajectory returns 6 and 22 -> Ĝ = 0 and 1, so a transition of
  the second trajectory is exp(1/α) times as likely as one of the first."""
  tr = offline.transitions(_dataset())
  logits = offline.return_weighted_logits(tr, 0.1)
  np.testing.assert_allclose(logits, [0, 10])
  s = offline.trajectory_sampler(tr, logits)   # 3 transitions each
  p_first = s["cdf"][0] / 3
  p_second = (1 - s["cdf"][0]) / 3
  assert p_second / p_first == pytest.approx(np.exp(10.0))
  # a trajectory without a usable transition (return 100) does not stretch the range
  unused = dict(tr, returns=np.array([6.0, 22.0, 100.0]))
  np.testing.assert_allclose(offline.return_weighted_logits(unused, 0.1), [0, 10, 58.75])
  equal = dict(tr, returns=np.array([5.0, 5.0]))
  np.testing.assert_allclose(offline.return_weighted_logits(equal, 0.1), 0.0)
  with pytest.raises(ValueError, match="sampler"):
    td3_bc.TD3BCConfig(sampler="best").validate()


@pytest.mark.parametrize("chunk", [7, 64, 100000])
def test_nearest_neighbour_matches_brute_force(chunk):
  from algorithms.common import nearest  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(chunk)
  points = rng.normal(size=(1000, 5)).astype(np.float32) * np.array([1, 2, 3, 0.5, 10], np.float32)
  queries = rng.normal(size=(40, 5)).astype(np.float32) * 3
  queries[:5] = points[[3, 999, 0, 500, 7]]  # exact hits, incl. the first and last points
  idx = np.asarray(jax.jit(lambda q: nearest.nearest(q, jnp.asarray(points), chunk))(queries))
  d2 = ((queries[:, None, :].astype(np.float64) - points[None].astype(np.float64)) ** 2).sum(-1)
  np.testing.assert_array_equal(idx[:5], [3, 999, 0, 500, 7])
  np.testing.assert_allclose(d2[np.arange(40), idx], d2.min(1), rtol=1e-5, atol=1e-6)
  assert (idx == d2.argmin(1)).mean() >= 0.95  # ties within float32 rounding aside


def test_prdc_actor_loss_by_hand():
  from algorithms import prdc  # pylint: disable=import-outside-toplevel
  obs = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 1.0]], np.float32)
  action = np.array([[0.3], [-0.8], [0.1]], np.float32)   # ignored: the neighbours' count
  wa, ba = np.array([[0.4], [0.2]]), np.array([0.1])
  w1, b1 = np.array([[1.0], [-1.0], [2.0]]), np.array([0.5])
  w2, b2 = np.array([[0.0], [3.0], [1.0]]), np.array([-1.0])
  actor_params = _linear(wa, ba)
  q_params = {"params": {"MLP_0": _linear(w1, b1)["params"], "MLP_1": _linear(w2, b2)["params"]}}
  actor_net, q_net = MLP((), 1, "relu"), QNet((), 2, "relu")
  # dataset points (already normalised): states and actions
  ds = np.array([[1.0, -2.0], [1.0, -2.0], [0.0, 0.0], [-1.0, 1.5], [5.0, 5.0]], np.float32)
  da = np.array([[0.9], [-0.9], [0.2], [-0.5], [0.0]], np.float32)
  beta = 2.0
  tr = {"obs": ds, "action": da}
  ctx = prdc.search_index(tr, offline.Normalizer.identity(2), beta, chunk=2)
  batch = {"obs": obs, "action": action, "context": ctx}
  loss, aux = prdc.actor_loss(actor_params, q_params, batch, actor_net, q_net, 2.5, beta)
  pi = np.tanh(obs @ wa + ba)
  q1 = (np.concatenate([obs, pi], 1) @ w1 + b1)[:, 0]
  lam = 2.5 / np.abs(q1).mean()
  keys = np.concatenate([beta * obs, pi], 1)
  points = np.concatenate([beta * ds, da], 1)
  nn = ((keys[:, None] - points[None]) ** 2).sum(-1).argmin(1)
  # pi(s0) = tanh(0.1) ≈ 0.1: of the two copies of s0, the one with a = 0.9 is nearer;
  # s1 = (0.5, 0) is nearest to (0, 0); s2 to (−1, 1.5)
  np.testing.assert_array_equal(nn, [0, 2, 3])
  expected = -lam * q1.mean() + ((pi - da[nn]) ** 2).mean()
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  dist = np.linalg.norm(keys - points[nn], axis=1).mean()
  assert float(aux["neighbour_distance"]) == pytest.approx(dist, rel=1e-5)
  # the neighbour is a constant: d loss / d ba as TD3+BC's with â in place of a
  g = jax.grad(lambda p: prdc.actor_loss(p, q_params, batch, actor_net, q_net, 2.5, beta)[0])(
      actor_params)
  dpi = 1 - pi[:, 0] ** 2
  expected_gb = -lam * np.mean(w1[2, 0] * dpi) + np.mean(2 * (pi[:, 0] - da[nn, 0]) * dpi)
  assert float(g["params"]["Dense_0"]["bias"][0]) == pytest.approx(expected_gb, rel=1e-4)


def _a2pr_setup():
  """Linear (no hidden layer) actor, twin Q, V and VAE with hand-set weights."""
  from algorithms import a2pr  # pylint: disable=import-outside-toplevel
  from algorithms.common.networks import ValueNet  # pylint: disable=import-outside-toplevel
  obs = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 1.0]], np.float32)
  action = np.array([[0.3], [-0.8], [0.1]], np.float32)
  p = {"wa": np.array([[0.4], [0.2]]), "ba": np.array([0.1]),
       "w1": np.array([[1.0], [-1.0], [2.0]]), "b1": np.array([0.5]),
       "w2": np.array([[0.0], [3.0], [1.0]]), "b2": np.array([-1.0]),
       "wv": np.array([[0.5], [0.25]]), "bv": np.array([0.3]),
       # VAE: latent 2 from [s, a] (3), decoder from [s, z] (4)
       "wm": np.array([[0.1, -0.2], [0.3, 0.0], [0.5, 1.0]]), "bm": np.array([0.0, 0.1]),
       "wl": np.array([[0.2, 0.0], [0.0, -0.1], [0.4, 0.3]]), "bl": np.array([-1.0, -0.5]),
       "wd": np.array([[0.3], [-0.1], [0.6], [-0.4]]), "bd": np.array([0.05])}
  f = lambda x: jnp.asarray(x, jnp.float32)
  params = {
      "actor": _linear(p["wa"], p["ba"]),
      "q": {"params": {"MLP_0": _linear(p["w1"], p["b1"])["params"],
                       "MLP_1": _linear(p["w2"], p["b2"])["params"]}},
      "v": {"params": {"MLP_0": _linear(p["wv"], p["bv"])["params"]}},
      "vae": {"params": {"mu": {"kernel": f(p["wm"]), "bias": f(p["bm"])},
                         "log_sigma": {"kernel": f(p["wl"]), "bias": f(p["bl"])},
                         "out": {"kernel": f(p["wd"]), "bias": f(p["bd"])}}}}
  nets = (MLP((), 1, "relu"), QNet((), 2, "relu"), ValueNet((), "relu"), a2pr.VAE((), 1, 2))
  return a2pr, obs, action, p, params, nets


def _vae_by_hand(p, obs, action, eps):
  sa = np.concatenate([obs, action], 1)
  mu, sigma = sa @ p["wm"] + p["bm"], np.exp(np.clip(sa @ p["wl"] + p["bl"], -4, 15))
  z = mu + sigma * eps
  return np.tanh(np.concatenate([obs, z], 1) @ p["wd"] + p["bd"]), mu, sigma


def test_a2pr_value_and_vae_losses_by_hand():
  a2pr, obs, action, p, params, nets = _a2pr_setup()
  batch = {"obs": obs, "action": action}
  y_t, y_o = np.array([1.0, -2.0, 0.5]), np.array([0.5, -1.0, 3.0])
  v = (obs @ p["wv"] + p["bv"])[:, 0]
  loss, _ = a2pr.value_loss(params["v"], batch, y_t, y_o, nets[2])
  assert float(loss) == pytest.approx(np.mean((v - np.minimum(y_t, y_o)) ** 2), rel=1e-5)
  key = jax.random.PRNGKey(3)
  eps = np.asarray(jax.random.normal(key, (3, 2)))   # the VAE's reparameterisation noise
  recon, mu, sigma = _vae_by_hand(p, obs, action, eps)
  q1, v_old = np.array([1.0, 0.0, 2.0]), np.array([0.5, 0.5, 2.5])   # advantageous: row 0
  loss, aux = a2pr.vae_loss(params["vae"], batch, q1, v_old, key, nets[3], 1.5)
  recon_loss = np.mean(1.5 * np.array([1, 0, 0])[:, None] * (recon - action) ** 2)
  kl = -0.5 * np.mean(1 + np.log(sigma ** 2) - mu ** 2 - sigma ** 2)
  assert float(aux["vae_recon_loss"]) == pytest.approx(recon_loss, rel=1e-5)
  assert float(loss) == pytest.approx(recon_loss + 0.5 * kl, rel=1e-5)


def test_a2pr_actor_loss_by_hand():
  a2pr, obs, action, p, params, nets = _a2pr_setup()
  batch = {"obs": obs, "action": action}
  v_old = np.array([0.0, 3.0, -1.0])
  key = jax.random.PRNGKey(5)
  loss, aux = a2pr.actor_loss(params["actor"], params["q"], params["vae"], batch, v_old, key,
                              nets, 2.5, 0.4)
  q1 = lambda a: (np.concatenate([obs, a], 1) @ p["w1"] + p["b1"])[:, 0]
  pi = np.tanh(obs @ p["wa"] + p["ba"])
  lam = 2.5 / np.abs(q1(pi)).mean()
  recon, _, _ = _vae_by_hand(p, obs, pi, np.asarray(jax.random.normal(key, (3, 2))))
  a_recon, a_data = q1(recon) - v_old, q1(action) - v_old
  target = np.where((a_recon >= a_data)[:, None], recon, action)
  m = 0.4 * ((q1(recon) >= v_old) | (q1(action) > v_old))
  assert 0 < m.sum() < 0.4 * 3 and 0 < (a_recon >= a_data).sum() < 3   # both branches used
  expected = -lam * q1(pi).mean() + np.mean(m[:, None] * (pi - target) ** 2)
  assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_prdc_index_holds_scaled_normalised_states():
  from algorithms import prdc  # pylint: disable=import-outside-toplevel
  tr = {"obs": np.array([[1.0, 2.0], [3.0, 6.0]], np.float32),
        "action": np.array([[0.5], [-0.5]], np.float32)}
  stats = offline.Normalizer(jnp.array([2.0, 4.0]), jnp.array([1.0, 2.0]))
  ctx = prdc.search_index(tr, stats, 2.0, chunk=4)
  # rows: [2 (s − mean) / scale, a] = [2·(−1, −1), 0.5], [2·(1, 1), −0.5] (one chunk)
  np.testing.assert_allclose(ctx["chunks"], [[[-2, -2, 0.5], [2, 2, -0.5]]])
  assert ctx["valid"].all()


def test_delayed_actor_is_a_branch_under_vmap_and_acts_every_second_step():
  """The offline loop's step index keeps TD3's `lax.cond` a branch when seeds are vmapped
  (no select running the actor step on every step), and the actor still moves on
  every second gradient step only."""
  class Sizes:
    observation_size, action_size = 2, 1
  config = td3_bc.TD3BCConfig(grad_steps=2, hidden=(8,), batch_size=4,
                              sampler="return_weighted")
  agent = td3_bc.make_agent(config, Sizes(), _dataset())
  update = jax.vmap(lambda s, d: agent.update(s, d), in_axes=(0, None))
  state = jax.vmap(agent.init)(jax.random.split(jax.random.PRNGKey(0), 2))
  assert "cond" in str(jax.make_jaxpr(update)(state, agent.data))
  with pytest.raises(ValueError, match="divide grad_steps"):
    td3_bc.TD3BCConfig(grad_steps=3).validate()
  # one update = 2 critic steps and 1 actor step: Adam's actor count is 1, the critic's 2
  new, metrics = jax.jit(update)(state, agent.data)
  counts = [int(x[0]) for x in jax.tree.leaves(new.learner["opt"]["actor"])
            if jnp.issubdtype(x.dtype, jnp.integer)]
  assert counts and set(counts) == {1}
  counts = [int(x[0]) for x in jax.tree.leaves(new.learner["opt"]["q"])
            if jnp.issubdtype(x.dtype, jnp.integer)]
  assert set(counts) == {2}
  assert np.isfinite(np.asarray(metrics["actor_loss"])).all()
