"""DAC: the discriminator loss and gradient penalty by hand, rewards, expert subsampling
with absorbing states."""

import jax
import jax.numpy as jnp
import numpy as np

from algorithms import dac
from algorithms.common.networks import MLP
from evaluation.data import LoggedData, save
from experiments.agents import load_demos

W, B = np.array([0.5, -1.0, 2.0]), 0.3          # a linear discriminator D(x) = W·x + B


def _linear():
  net = MLP((), 1)
  params = {"params": {"Dense_0": {"kernel": jnp.asarray(W[:, None], jnp.float32),
                                   "bias": jnp.asarray([B], jnp.float32)}}}
  return net, params


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def test_discriminator_loss_and_gradient_penalty_by_hand():
  net, params = _linear()
  x_e = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, -1.0]])
  w_e = np.array([1.0, 0.25])
  x_p = np.array([[0.2, 0.0, 0.1], [-1.0, 0.0, 0.3]])
  terminal = np.array([0.0, 1.0])                 # the second replay transition terminates
  x_abs = np.array([0.0, 1.0, 0.0])
  d_e, d_p, d_abs = x_e @ W + B, x_p @ W + B, x_abs @ W + B
  want = (-np.mean(w_e * _log_sigmoid(d_e))
          - (np.sum(_log_sigmoid(-d_p)) + _log_sigmoid(-d_abs)) / 2)
  # A linear D has ∇_x D = W everywhere: GP = (‖W‖ − 1)² whatever the interpolates.
  gp = (np.linalg.norm(W) - 1.0) ** 2
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  loss, aux = dac.discriminator_loss(params, net, f32(x_e), f32(w_e), f32(x_p), f32(terminal),
                                     f32(x_abs), jax.random.PRNGKey(0), 10.0)
  np.testing.assert_allclose(aux["disc_loss"], want, rtol=1e-5)
  np.testing.assert_allclose(aux["gradient_penalty"], gp, rtol=1e-5)
  np.testing.assert_allclose(loss, want + 10.0 * gp, rtol=1e-5)


def test_rewards():
  logit = jnp.array([-2.0, 0.0, 3.0])
  np.testing.assert_allclose(dac.reward(logit, "airl"), logit)
  sig = 1 / (1 + np.exp(-np.asarray(logit)))
  np.testing.assert_allclose(dac.reward(logit, "gail"), -np.log(1 - sig), rtol=1e-5)


def test_disc_input_marks_absorbing_states():
  x = dac.disc_input(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([[0.5], [0.7]]),
                     jnp.array([False, True]))
  np.testing.assert_array_equal(x, [[1.0, 2.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0]])


def test_expert_transitions_subsample_and_absorb(tmp_path):
  n, t = 2, 10
  term = np.zeros((n, t), bool)
  trunc = np.zeros((n, t), bool)
  term[0, 5] = True                               # trajectory 0 terminates after 6 steps
  trunc[1, 9] = True
  obs = np.arange(n * t, dtype=np.float32).reshape(n, t, 1) + 1
  data = LoggedData(obs=obs, action=np.full((n, t, 1), 0.5, np.float32),
                    reward=np.ones((n, t), np.float32), terminated=term, truncated=trunc,
                    behavior_log_prob=np.zeros((n, t), np.float32))
  save(data, str(tmp_path / "demos"))
  demos = load_demos(str(tmp_path / "demos"))       # what the binaries hand the agents
  out = dac.expert_transitions(demos, subsample=2)
  x, w = out["x"], out["weight"]
  # Trajectory 0: 6 valid steps -> 3 kept; one absorbing sample (weight 1/2).
  # Trajectory 1: 10 valid steps -> 5 kept; no absorbing sample (truncated).
  assert x.shape == (3 + 1 + 5, 3) and w.tolist() == [1, 1, 1, 0.5, 1, 1, 1, 1, 1]
  np.testing.assert_array_equal(x[3], [0.0, 1.0, 0.0])
  assert set(x[:3, 0]) <= set(obs[0, :6, 0]) and set(x[4:, 0]) <= set(obs[1, :, 0])
  assert (x[[0, 1, 2, 4, 5, 6, 7, 8], 1] == 0).all()
  full = dac.expert_transitions(demos, subsample=1)
  assert full["x"].shape[0] == 6 + 1 + 10
  # Without absorbing states (AILBoost and its paper's DAC): x = [s, a], no x_abs rows.
  plain = dac.expert_transitions(demos, subsample=1, absorbing=False)
  assert plain["x"].shape == (6 + 10, 2) and (plain["x"][:, 1] == 0.5).all()
  np.testing.assert_array_equal(
      dac.disc_input(jnp.ones((1, 2)), jnp.full((1, 1), 0.5), None, indicator=False), [[1, 1, 0.5]])


# A linear controller that holds brax/inverted_pendulum up for all 200 steps (found by
# random search over gains): the expert of the learning tests.
EXPERT_GAINS = np.array([-0.3436, 3.3111, 0.5954, 0.6417], np.float32)


def scripted_demos(path, num_trajectories=4):
  """Saves demonstrations of the linear expert on brax/inverted_pendulum (200 steps) ->
  (env, the demonstrations' arrays as the binaries load them)."""
  import envs  # pylint: disable=import-outside-toplevel
  from evaluation import data as data_lib  # pylint: disable=import-outside-toplevel
  env = envs.make("brax/inverted_pendulum", episode_length=200)
  demos = jax.jit(lambda k: data_lib.collect(
      env, lambda obs, _: jnp.clip(obs @ EXPERT_GAINS, -1, 1)[:, None],
      lambda obs, a: jnp.zeros(obs.shape[0]), k, num_trajectories, 200))(jax.random.PRNGKey(0))
  assert float(data_lib.discounted_returns(demos, 1.0).mean()) > 190
  data_lib.save(demos, path)
  return env, load_demos(path)


def test_dac_imitates_a_scripted_expert(tmp_path):
  """Two seeds: with only the expert's (s, a) and no env reward, the pole is held far
  longer than by the initial policy.

  12k env steps (~45 s on 2 cores). Base seeds 0, 1, 2 gave before -> after per seed (the
  demonstrations made under conftest.py's fast XLA flags): [15, 11] -> [105, 125],
  [35, 26] -> [111, 172], [16, 36] -> [157, 93]: the smallest gain is 57 and the smallest
  mean 115, against the thresholds' 30 and 80.
  """
  from tests.algorithms.learning import before_and_after  # pylint: disable=import-outside-toplevel
  env, demos = scripted_demos(str(tmp_path / "demos"))
  config = dac.DACConfig(num_envs=8, unroll_length=8, utd_ratio=0.25, batch_size=128,
                         buffer_size=50_000, learning_starts=1_000, hidden=(64, 64),
                         disc_hidden=(64, 64), expert_subsample=4, demos=str(tmp_path / "demos"))
  agent = dac.make_agent(config, env, demos)
  before, after, metrics, _ = before_and_after(agent, env, 12_000 // agent.steps_per_update)
  assert (before < 60).all(), before
  assert (after > before + 30).all() and after.mean() > 80, (before, after)
  assert np.isfinite(np.asarray(metrics["disc_loss"])).all()


def test_gradient_penalty_is_finite_where_the_discriminator_is_flat():
  """The AILBoost authors' ReLU discriminator with every first-layer unit off: ∇_x D = 0,
  so GP = (0 − 1)² = 1 per row, and its gradient must be finite (jnp.linalg.norm's is
  NaN at 0, which turned whole runs NaN). Where ∇_x D = 0 at every x̂ (all units off for
  all inputs), no parameter can change the penalty: its gradient is 0."""
  net = dac.discriminator(dac.AILBoostBaselineConfig(demos="d"))
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 5))
  params = net.init(jax.random.PRNGKey(0), x)
  params = jax.tree_util.tree_map_with_path(
      lambda path, v: v - 100.0 if "Dense_0" in jax.tree_util.keystr(path)
      and "bias" in jax.tree_util.keystr(path) else v, params)
  gp = lambda p: dac.grad_penalty(p, net, x, x + 1.0, jax.random.PRNGKey(1))
  assert float(gp(params)) == 1.0
  for g in jax.tree.leaves(jax.grad(gp)(params)):
    np.testing.assert_array_equal(np.asarray(g), 0.0)
  v = jnp.asarray([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(dac.safe_norm(v), [5.0, 0.0])
  np.testing.assert_allclose(jax.jacobian(lambda a: dac.safe_norm(a).sum())(v),
                             [[0.6, 0.8], [0.0, 0.0]])


def test_discriminator_configurations():
  """Our DAC (Kostrikov's: 256-256 tanh, raw logit), the AILBoost paper's DAC baseline
  (64-64 ReLU, logit bounded by tanh, Adam 1e-4, every expert transition) and AILBoost
  with our DAC's discriminator (JS loss)."""
  from algorithms import ailboost  # pylint: disable=import-outside-toplevel
  x = jnp.full((1, 5), 100.0)
  ours, paper = dac.DACConfig(demos="d"), dac.AILBoostBaselineConfig(demos="d")
  for cfg, bounded in ((ours, False), (paper, True)):
    net = dac.discriminator(cfg)
    out = float(net.apply(net.init(jax.random.PRNGKey(0), x), x)[0, 0])
    assert (abs(out) < 1) == bounded, (cfg, out)
  assert (paper.disc_hidden, paper.disc_learning_rate, paper.expert_subsample) == ((64, 64), 1e-4, 1)
  boost_dac = ailboost.AILBoostDACDiscConfig(demos="d")
  assert (boost_dac.disc_loss, boost_dac.disc_hidden, boost_dac.disc_output_tanh,
          boost_dac.disc_learning_rate) == ("js", ours.disc_hidden, False, ours.disc_learning_rate)
  assert ailboost.AILBoostConfig(demos="d").disc_loss == "rkl"
