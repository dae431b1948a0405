"""Marginal OPE (MWL weights, SAM-IS, SAM-DR) against the tiny MDP's exact occupancy ratios
and value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evaluation.data import valid_mask
from evaluation.ope import marginal as mg
from tests.evaluation import tiny_mdp as mdp
from tests.xla_options import OPTIMISED

BEHAVIOR = ((0.0, 0.0), 1.0)
TARGET = ((0.5, -0.5), 1.0)
N = 20000


def occupancy(policy):
  """P(s_t = s, go_t = g, alive at t) [T, 2, 2] by forward recursion: go moves to state
  go; (1, stay) ends the episode."""
  p, d, out = mdp.p_go(*policy), np.array([1.0, 0.0]), []
  for _ in range(mdp.T):
    out.append(d[:, None] * np.stack([1 - p, p], 1))
    d = (out[-1] * ~mdp.TERMINAL).sum(0)              # the next state is go
  return np.array(out)


def exact_ratios(behavior, target):
  """P_e(s_t = s, go_t = g) / P_b(s_t = s, go_t = g) [T, 2, 2] (NaN where π_b never is)."""
  b, e = occupancy(behavior), occupancy(target)
  return np.where(b > 0, e / np.where(b > 0, b, 1), np.nan)


def tabular(obs, action, t, horizon):
  """One-hot of (t, s, go), obs [..., 2] being one-hot(s) (0 on padding), and a constant 1
  -> [..., 4T + 1]. The constant is non-zero on padding and at t = T too, so the test
  functions see whether the loss stops at each episode's end (m_t)."""
  go = (action[..., 0] > 0).astype(jnp.float32)
  f = (jax.nn.one_hot(t, horizon)[..., :, None, None] * obs[..., None, :, None]
       * jnp.stack([1 - go, go], -1)[..., None, None, :])
  return jnp.concatenate([f.reshape(f.shape[:-3] + (-1,)), jnp.ones_like(go)[..., None]], -1)


def sample_target(params, obs, key):
  means, scale = TARGET
  s = jnp.argmax(obs, -1)
  return jnp.tanh(jnp.asarray(means)[s] + scale * jax.random.normal(key, s.shape))[..., None]


def cells(data, states):
  """(t, s, go) of every logged step [N, T] each, and its valid mask."""
  go = (np.asarray(data.action[..., 0]) > 0).astype(int)
  t = np.broadcast_to(np.arange(mdp.T), states.shape)
  return t, states, go, np.asarray(valid_mask(data.terminated, data.truncated))


def u_statistic_ratios(data, states):
  """The finite-sample MWL solution for the tabular class, solved directly: w [T, 2, 2]
  minimising the U-statistic over trajectories Σ_{i≠j} ⟨ψ_i(w), ψ_j(w)⟩, ψ_i(w) [4T + 1]
  being trajectory i's Σ_t γ^t w(c_t)(f(c_t) − γ m_t E_e f(c'_t)) − E_e f(c_0) for the test
  functions f = 1{· = c} of every cell c and f = 1. With ψ_i = A_iᵀ w − b, S = Σ_i A_i and
  Q = Σ_i A_i A_iᵀ, the minimiser solves (S Sᵀ − Q) w = (N − 1) S b."""
  t, s, go, valid = cells(data, states)
  m = np.asarray(mg.continuation(data))
  p_e = mdp.p_go(*TARGET)
  num = mdp.T * 4
  index = lambda tt, ss, gg: (tt * 2 + ss) * 2 + gg
  big_s, big_q = np.zeros((num, num + 1)), np.zeros((num, num))
  for i in range(valid.shape[0]):
    a = np.zeros((num, num + 1))                       # A_i[cell, test function]
    for j in np.nonzero(valid[i])[0]:
      row = index(t[i, j], s[i, j], go[i, j])
      g = mdp.GAMMA ** j
      a[row, row] += g
      a[row, num] += g * (1 - mdp.GAMMA * m[i, j])     # f = 1
      if m[i, j]:
        nxt = go[i, j]                                # the next state is the chosen go
        for g2, p in ((0, 1 - p_e[nxt]), (1, p_e[nxt])):
          a[row, index(j + 1, nxt, g2)] -= mdp.GAMMA * g * p
    big_s += a
    big_q += a @ a.T
  b = np.zeros(num + 1)
  b[index(0, 0, 0)], b[index(0, 0, 1)], b[num] = 1 - p_e[0], p_e[0], 1.0
  seen = np.abs(big_s).sum(1) > 0
  w = np.full(num, np.nan)
  sub = big_s[seen]
  hessian = sub @ sub.T - big_q[np.ix_(seen, seen)]
  assert np.linalg.eigvalsh(hessian).min() > 0   # a minimum (the U-statistic can be unbounded)
  w[seen] = np.linalg.solve(hessian, (valid.shape[0] - 1) * sub @ b)
  return w.reshape(mdp.T, 2, 2)


@pytest.fixture(scope="module")
def logged():
  # The tolerances hold with margin for data seeds 0, 1 and 2 (checked; one runs here).
  return mdp.sample(0, N, *BEHAVIOR)


@pytest.fixture(scope="module")
def tabular_weights(logged):
  data, _ = logged
  config = mg.MWLConfig(hidden=(), kernel="linear", learning_rate=0.05, steps=2000,
                        batch_size=2048)
  return np.asarray(jax.jit(lambda k: mg.mwl(data, sample_target, None, mdp.GAMMA, k, config,
                                             tabular), compiler_options=OPTIMISED)(
                                                 jax.random.PRNGKey(0)))


def test_tabular_mwl_recovers_the_occupancy_ratios(logged, tabular_weights):
  data, states = logged
  t, s, go, valid = cells(data, states)
  exact, direct = exact_ratios(BEHAVIOR, TARGET), u_statistic_ratios(data, states)
  for tt, ss, gg in {(a, b, c) for a, b, c in zip(t[valid], s[valid], go[valid])}:
    sel = valid & (t == tt) & (s == ss) & (go == gg)
    learned = tabular_weights[sel]
    assert np.ptp(learned) < 1e-5                       # one weight per cell
    # Adam's minibatch noise: the worst cell is 1.1-2.9% off over data seeds 0, 1, 2
    assert learned[0] == pytest.approx(direct[tt, ss, gg], rel=0.05), (tt, ss, gg)
    if sel.sum() > 1000:                                # finite-sample error ~ 1/sqrt(count)
      assert learned[0] == pytest.approx(exact[tt, ss, gg], rel=0.1), (tt, ss, gg)
  value = mdp.exact(*TARGET)[0][0, 0]
  assert float(mg.sam_is(data, jnp.asarray(tabular_weights), mdp.GAMMA)) == pytest.approx(
      value, rel=0.015)
  assert np.all(tabular_weights[~valid] == 0)


def test_step_mass_is_the_targets_survival(logged, tabular_weights):
  """step_mass of the exact ratios (mapped onto the logged cells) and of the learned tabular
  weights against P_e(alive at t); of weights 1 everywhere, padding included, against
  P_b(alive at t)."""
  data, states = logged
  t, s, go, valid = cells(data, states)
  alive = occupancy(TARGET).sum((1, 2))
  assert alive[0] == 1.0 and alive[-1] < 0.9            # the target does end episodes
  exact = np.where(valid, exact_ratios(BEHAVIOR, TARGET)[t, s, go], 0.0)
  # N = 20000 trajectories: the exact ratios' mass is within ~1% of it (sampling noise)
  np.testing.assert_allclose(mg.step_mass(data, jnp.asarray(exact)), alive, rtol=0.03)
  np.testing.assert_allclose(mg.step_mass(data, jnp.asarray(tabular_weights)), alive, rtol=0.05)
  np.testing.assert_allclose(mg.step_mass(data, jnp.ones(valid.shape)),
                             occupancy(BEHAVIOR).sum((1, 2)), rtol=0.03)
  assert float(mg.step_mass(data, 3 * jnp.asarray(exact)).max()) > mg.MAX_STEP_MASS


@pytest.fixture(scope="module")
def default_and_time_kernel_weights(logged):
  """w [N, T] of the default MWL and of the product kernel in t (time_bandwidth = 1 step),
  the same key and steps: they differ by the kernel alone."""
  data, _ = logged
  fit = lambda config: jax.jit(lambda k: mg.mwl(data, sample_target, None, mdp.GAMMA, k, config),
                               compiler_options=OPTIMISED)(jax.random.PRNGKey(1))
  return fit(mg.MWLConfig()), fit(mg.MWLConfig(time_bandwidth=1.0))


def test_default_mwl_estimates_the_value(logged, default_and_time_kernel_weights):
  """Gaussian kernel on (s, a, t/T), a 64-64 network: SAM-IS near the exact value."""
  data, _ = logged
  w = default_and_time_kernel_weights[0]
  value = mdp.exact(*TARGET)[0][0, 0]
  assert float(mg.sam_is(data, w, mdp.GAMMA)) == pytest.approx(value, rel=0.04)


def test_time_kernel_mwl_estimates_the_value(logged, default_and_time_kernel_weights):
  """The product kernel in t on the default features: SAM-IS near the exact value, as
  without it (0.4-1.1% off over data seeds 0, 1, 2), from weights
  that differ from the default's (max 0.10 here: the option reaches the loss)."""
  data, _ = logged
  w_default, w = map(np.asarray, default_and_time_kernel_weights)
  value = mdp.exact(*TARGET)[0][0, 0]
  assert float(mg.sam_is(data, jnp.asarray(w), mdp.GAMMA)) == pytest.approx(value, rel=0.04)
  assert np.abs(w - w_default).max() > 0.01


def test_sam_dr_is_doubly_robust(logged):
  """Exact Q̂ with wrong weights, and exact weights with a wrong Q̂ (whose V̂ is its own
  mean under π_e, as FQE's is): both unbiased."""
  data, states = logged
  t, s, go, valid = cells(data, states)
  v, q = mdp.exact(*TARGET)
  value = v[0, 0]
  q_sa = np.where(valid, q[t, s, go], 0.0)
  v_s = np.where(valid, v[t, s], 0.0)
  exact_w = np.where(valid, np.nan_to_num(exact_ratios(BEHAVIOR, TARGET))[t, s, go], 0.0)
  f = lambda w, q_, v_: float(mg.sam_dr(data, jnp.asarray(w, jnp.float32), mdp.GAMMA,
                                        jnp.asarray(q_, jnp.float32), jnp.asarray(v_, jnp.float32)))
  assert f(np.full_like(exact_w, 1.7), q_sa, v_s) == pytest.approx(value, rel=0.01)
  assert f(exact_w, 0.5 * q_sa + np.where(valid, 1.0, 0.0), 0.5 * v_s + np.where(valid, 1.0, 0.0)
           ) == pytest.approx(value, rel=0.015)
  assert f(exact_w, 0 * q_sa, 0 * v_s) == pytest.approx(
      float(mg.sam_is(data, jnp.asarray(exact_w, jnp.float32), mdp.GAMMA)), rel=1e-5)
  both = mg.estimate_marginal(data, jnp.asarray(exact_w, jnp.float32)[None], mdp.GAMMA,
                              jnp.asarray(q_sa, jnp.float32)[None], jnp.asarray(v_s, jnp.float32)[None])
  assert set(both) == set(mg.MARGINAL_ESTIMATORS) and both["sam_dr"].shape == (1,)


def test_kernel_embedding_product_by_hand():
  rng = np.random.default_rng(0)
  c1, c2 = rng.normal(size=3), rng.normal(size=2)
  z1, z2 = rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
  h = 0.7
  want = sum(c1[i] * c2[j] * np.exp(-np.sum((z1[i] - z2[j]) ** 2) / (2 * h * h))
             for i in range(3) for j in range(2))
  got = mg.mwl_embedding_product(*map(jnp.asarray, (c1, z1, c2, z2)), "gaussian", h)
  assert float(got) == pytest.approx(want, rel=1e-5)
  want_linear = sum(c1[i] * c2[j] * z1[i] @ z2[j] for i in range(3) for j in range(2))
  got = mg.mwl_embedding_product(*map(jnp.asarray, (c1, z1, c2, z2)), "linear", h)
  assert float(got) == pytest.approx(want_linear, rel=1e-5)
  # With time steps and a time bandwidth, each pair also carries exp(−Δt² / (2h_t²)).
  t1, t2, ht = np.array([0, 3, 4]), np.array([4, 1]), 1.5
  want = sum(c1[i] * c2[j] * np.exp(-np.sum((z1[i] - z2[j]) ** 2) / (2 * h * h))
             * np.exp(-(t1[i] - t2[j]) ** 2 / (2 * ht * ht)) for i in range(3) for j in range(2))
  got = mg.mwl_embedding_product(*map(jnp.asarray, (c1, z1, c2, z2)), "gaussian", h,
                                 t1=jnp.asarray(t1), t2=jnp.asarray(t2), time_bandwidth=ht)
  assert float(got) == pytest.approx(want, rel=1e-5)
  want = sum(c1[i] * c2[j] * (np.exp(-np.sum((z1[i] - z2[j]) ** 2) / (2 * h * h)) + 0.4)
             * np.exp(-(t1[i] - t2[j]) ** 2 / (2 * ht * ht)) for i in range(3) for j in range(2))
  got = mg.mwl_embedding_product(*map(jnp.asarray, (c1, z1, c2, z2)), "gaussian", h,
                                 t1=jnp.asarray(t1), t2=jnp.asarray(t2), time_bandwidth=ht,
                                 time_only=0.4)
  assert float(got) == pytest.approx(want, rel=1e-5)
  # With trajectory ids, the products of points of one trajectory are left out.
  g1, g2 = np.array([0, 1, 1]), np.array([1, 2])
  for kernel, pair in (("gaussian", lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * h * h))),
                       ("linear", lambda a, b: a @ b)):
    want = sum(c1[i] * c2[j] * pair(z1[i], z2[j]) for i in range(3) for j in range(2)
               if g1[i] != g2[j])
    got = mg.mwl_embedding_product(*map(jnp.asarray, (c1, z1, c2, z2)), kernel, h,
                                   jnp.asarray(g1), jnp.asarray(g2))
    assert float(got) == pytest.approx(want, rel=1e-5), kernel


def test_bad_config_is_a_clear_error():
  data, _ = mdp.sample(0, 4, *BEHAVIOR)
  for bad, message in ((dict(kernel="rbf"), "kernel must be 'gaussian' or 'linear'"),
                       (dict(steps=0), "steps must be >= 1"),
                       (dict(bandwidth=-1.0), "bandwidth must be > 0"),
                       (dict(bandwidth_scale=0.0), "bandwidth_scale must be > 0"),
                       (dict(time_bandwidth=0.0), "time_bandwidth must be > 0"),
                       (dict(time_bandwidth=1.0, kernel="linear"), "needs kernel='gaussian'"),
                       (dict(time_only=1.0), "time_only needs a time_bandwidth"),
                       (dict(time_bandwidth=1.0, time_only=-1.0), "time_only must be >= 0")):
    with pytest.raises(ValueError, match=message):
      mg.mwl(data, sample_target, None, mdp.GAMMA, jax.random.PRNGKey(0), mg.MWLConfig(**bad))
  one = jax.tree.map(lambda x: x[:1], data)
  with pytest.raises(ValueError, match="at least 2 trajectories"):
    mg.mwl(one, sample_target, None, mdp.GAMMA, jax.random.PRNGKey(0))
