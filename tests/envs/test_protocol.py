"""Env protocol conformance for the jittable backends (brax/, dmc/)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

EPISODE = 20
B = 3


def _roll(env, key, action_value, steps):
  """Batch rollout with a constant action: (reset state, stacked states [steps, B])."""
  return _roller(env, action_value, steps)(key)


def _roller(env, action_value, steps):
  """The jitted rollout, built once per (env, action, steps) so tests share compiles."""
  cache = _roller.__dict__.setdefault("cache", {})
  if (id(env), action_value, steps) in cache:
    return cache[(id(env), action_value, steps)][1]

  @jax.jit
  def run(key):
    s0 = envs.batch_reset(env, key, B)

    def body(s, _):
      s = envs.batch_step(env, s, jnp.full((B, env.action_size), action_value))
      return s, s

    return s0, jax.lax.scan(body, s0, None, length=steps)[1]

  cache[(id(env), action_value, steps)] = (env, run)  # holds env so its id stays unique
  return run


@pytest.fixture(scope="module", params=["brax/inverted_pendulum", "dmc/cartpole_balance"])
def rolled(request):
  env = envs.make(request.param, episode_length=EPISODE)
  s0, traj = _roll(env, jax.random.PRNGKey(0), 0.0, 2 * EPISODE + 5)
  return env, s0, traj


def test_shapes_and_dtypes(rolled):
  env, s0, traj = rolled
  assert s0.obs.shape == (B, env.observation_size)
  assert traj.obs.shape == (2 * EPISODE + 5, B, env.observation_size)
  assert traj.reward.shape == traj.terminated.shape == traj.truncated.shape == (2 * EPISODE + 5, B)
  assert traj.obs.dtype == jnp.float32 and traj.reward.dtype == jnp.float32
  assert traj.terminated.dtype == jnp.bool_ and traj.truncated.dtype == jnp.bool_
  assert np.isfinite(np.asarray(traj.obs)).all()


def test_determinism_same_key_same_trajectory(rolled):
  env, s0, traj = rolled
  s0b, trajb = _roll(env, jax.random.PRNGKey(0), 0.0, 2 * EPISODE + 5)
  np.testing.assert_array_equal(np.asarray(traj.obs), np.asarray(trajb.obs))
  s0c, _ = _roll(env, jax.random.PRNGKey(1), 0.0, 2 * EPISODE + 5)
  assert not np.allclose(np.asarray(s0.obs), np.asarray(s0c.obs))


def test_truncation_and_auto_reset(rolled):
  env, s0, traj = rolled
  term, trunc = np.asarray(traj.terminated), np.asarray(traj.truncated)
  assert not (term & trunc).any()
  steps = np.asarray(traj.info["steps"])
  for b in range(B):
    ends = np.flatnonzero(term[:, b] | trunc[:, b])
    assert ends.size >= 2
    # Truncation exactly at the limit, unless the episode terminated first.
    lengths = np.diff(np.concatenate([[-1], ends]))
    assert (lengths <= EPISODE).all()
    for end, length in zip(ends, lengths):
      assert trunc[end, b] == (length == EPISODE and not term[end, b])
      # Auto-reset: the next episode starts in the same step, bookkeeping cleared.
      assert steps[end, b] == 0
      assert float(traj.info["episode_return"][end, b]) == 0.0
      assert not np.array_equal(np.asarray(traj.info["final_obs"][end, b]),
                                np.asarray(traj.obs[end, b]))
    not_done = ~(term[:, b] | trunc[:, b])
    np.testing.assert_array_equal(np.asarray(traj.info["final_obs"])[not_done, b],
                                  np.asarray(traj.obs)[not_done, b])


def test_final_return_is_episode_return():
  env = envs.make("dmc/cartpole_balance", episode_length=EPISODE)
  _, traj = _roll(env, jax.random.PRNGKey(3), 0.0, EPISODE)
  rewards = np.asarray(traj.reward)
  np.testing.assert_allclose(np.asarray(traj.info["final_return"][-1]), rewards.sum(0), rtol=1e-5)
  assert np.asarray(traj.truncated[-1]).all() and not np.asarray(traj.terminated).any()


def test_termination_is_not_truncation():
  # A pushed inverted pendulum falls long before the limit: terminated, not truncated.
  env = envs.make("brax/inverted_pendulum", episode_length=200)
  _, traj = _roll(env, jax.random.PRNGKey(0), 1.0, 60)
  term, trunc = np.asarray(traj.terminated), np.asarray(traj.truncated)
  assert term.any(axis=0).all() and not trunc.any()


@pytest.mark.parametrize("mode", ["fresh", "cached"])
def test_auto_reset_modes(mode):
  env = envs.make("brax/inverted_pendulum", episode_length=5, auto_reset=mode)
  _, traj = _roll(env, jax.random.PRNGKey(0), 0.0, 16)
  starts = np.asarray(traj.obs)[[4, 9, 14], 0]  # first obs of episodes 2, 3, 4
  if mode == "cached":
    np.testing.assert_array_equal(starts[0], starts[1])
  else:
    assert not np.allclose(starts[0], starts[1])


def test_vmap_over_seeds_of_batches():
  env = envs.make("brax/inverted_pendulum", episode_length=EPISODE)
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  s = jax.jit(jax.vmap(lambda k: envs.batch_reset(env, k, B)))(keys)
  assert s.obs.shape == (2, B, env.observation_size)


def test_unknown_name_lists_known():
  with pytest.raises(envs.EnvError, match="known envs: .*brax/inverted_pendulum.*dmc/cartpole_balance"):
    envs.make("brax/not_an_env")
  with pytest.raises(envs.EnvError, match="unknown env"):
    envs.make("gym/cartpole")


def test_bad_kwargs_list_accepted():
  with pytest.raises(envs.EnvError, match="unknown keyword.*'bogus'.*accepted:.*episode_length"):
    envs.make("dmc/cartpole_balance", bogus=1)
  with pytest.raises(envs.EnvError, match="backend"):
    envs.make("brax/inverted_pendulum", bogus=1)
  with pytest.raises(envs.EnvError, match="episode_length must be a positive int"):
    envs.make("dmc/cartpole_balance", episode_length=0)
  with pytest.raises(envs.EnvError, match="auto_reset"):
    envs.make("dmc/cartpole_balance", auto_reset="sometimes")


def test_names_cover_backends():
  names = envs.names()
  assert "brax/halfcheetah" in names and "dmc/walker_walk" in names
  assert "dmc_native/cheetah_run" in names and "dmc/cheetah_run" in names
  assert envs.names("dmc") == [n for n in names if n.startswith("dmc/")]


def test_reset_and_step_states_have_identical_types(rolled):
  # Otherwise a jitted step loop fed its own output compiles a second time.
  env, _, _ = rolled
  s0 = env.reset(jax.random.PRNGKey(0))
  s1 = jax.jit(env.step)(s0, jnp.zeros(env.action_size))
  def types(s):
    leaves, tree = jax.tree_util.tree_flatten_with_path(s)
    return tree, [(jax.tree_util.keystr(p), jnp.shape(x), jnp.asarray(x).dtype,
                   jnp.asarray(x).weak_type) for p, x in leaves]

  (tree0, types0), (tree1, types1) = types(s0), types(s1)
  assert tree0 == tree1
  assert types0 == types1
