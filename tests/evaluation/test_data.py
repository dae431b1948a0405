"""Logged data: collection, save/load round trip, and one clear error per problem."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from evaluation import data as D


@pytest.fixture(scope="module")
def logged():
  env = envs.make("brax/inverted_pendulum", episode_length=50)

  def policy(obs, key):
    return jax.random.uniform(key, (obs.shape[0], 1), minval=-1, maxval=1)

  def log_prob(obs, action):
    return jnp.full(obs.shape[0], -jnp.log(2.0))

  return jax.jit(lambda k: D.collect(env, policy, log_prob, k, 6, 40))(jax.random.PRNGKey(0))


def test_collect_format(logged):
  assert logged.obs.shape == (6, 40, 4) and logged.action.shape == (6, 40, 1)
  assert logged.reward.shape == (6, 40) and logged.terminated.dtype == jnp.bool_
  mask = np.asarray(D.valid_mask(logged.terminated, logged.truncated))
  done = np.asarray(logged.terminated | logged.truncated)
  assert (done.sum(1) == 1).all()  # exactly one end per trajectory
  # Uniform random actions drop the pole early; rows then hold zero padding.
  assert np.asarray(logged.terminated).any() and (~mask).any()
  assert (np.asarray(logged.reward)[~mask] == 0).all()
  D.validate({k: getattr(logged, k) for k in D.ARRAYS})


def test_save_load_round_trip(logged, tmp_path):
  data = D.with_metadata(logged, env="brax/inverted_pendulum", discount=0.99, seed=0)
  D.save(data, str(tmp_path / "d"))
  back = D.load(str(tmp_path / "d"))
  for k in D.ARRAYS:
    np.testing.assert_array_equal(np.asarray(getattr(back, k)), np.asarray(getattr(logged, k)))
  assert back.metadata["env"] == "brax/inverted_pendulum" and back.metadata["horizon"] == 40


def _arrays(logged):
  return {k: np.array(getattr(logged, k)) for k in D.ARRAYS}


@pytest.mark.parametrize("corrupt,message", [
    (lambda a: a.pop("behavior_log_prob"), "lacks arrays: behavior_log_prob"),
    (lambda a: a.__setitem__("reward", a["reward"][:, :-1]), "must have shape"),
    (lambda a: a.__setitem__("terminated", a["terminated"].astype(np.float32)), "terminated must be bool"),
    (lambda a: a["reward"].__setitem__((0, 0), np.nan), "reward has 1 non-finite"),
    (lambda a: a["behavior_log_prob"].__setitem__((1, 0), -np.inf), "zero propensities"),
    (lambda a: a["behavior_log_prob"].__setitem__((1, 0), np.nan), "1 NaN log-propensities"),
    (lambda a: a["behavior_log_prob"].__setitem__((1, 0), np.inf), r"1 \+inf log-propensities .* cannot be infinite"),
    (lambda a: a["action"].__setitem__((0, 1, 0), 1.5), "action has 1 values outside"),
    (lambda a: a.__setitem__("reward", a["reward"][:, :0]) or a.__setitem__("obs", a["obs"][:, :0])
     or [a.__setitem__(k, a[k][:, :0]) for k in ("action", "terminated", "truncated", "behavior_log_prob")],
     "logged data is empty"),
    (lambda a: a["truncated"].__setitem__((2, 0), True) or a["terminated"].__setitem__((2, 0), True),
     "both terminated and truncated"),
    (lambda a: a["terminated"].__setitem__((3, -1), True), "done after its episode ended"),
])
def test_bad_data_raises_one_clear_error(logged, corrupt, message, tmp_path):
  arrays = _arrays(logged)
  corrupt(arrays)
  with pytest.raises(D.DataError, match=message):
    D.validate(arrays)
  np.savez(tmp_path / "bad.npz", **arrays)
  (tmp_path / "bad.json").write_text("{}")
  with pytest.raises(D.DataError, match=message):
    D.load(str(tmp_path / "bad"))


def test_missing_file():
  with pytest.raises(D.DataError, match="no logged data at"):
    D.load("/nonexistent/data")


def test_nan_and_zero_propensities_are_told_apart(logged):
  arrays = _arrays(logged)
  arrays["behavior_log_prob"][0, 0] = -np.inf
  arrays["behavior_log_prob"][1, 0] = np.nan
  with pytest.raises(D.DataError) as err:
    D.validate(arrays)
  assert "1 zero propensities" in str(err.value) and "1 NaN log-propensities" in str(err.value)
  assert str(err.value).count("pi_b > 0") == 1


def test_check_compares_the_discount(logged):
  data = D.with_metadata(logged, discount=0.99)
  D.check(data, 0.99)
  with pytest.raises(D.DataError, match="differs from the logged data's metadata discount 0.99"):
    D.check(data, 0.9)
  with pytest.raises(D.DataError, match=r"discount must be in \[0, 1\]"):
    D.check(logged, 1.5)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_file_is_one_clear_error(logged, damage, tmp_path):
  path = str(tmp_path / "d")
  D.save(logged, path)
  assert sorted(os.listdir(tmp_path)) == ["d.json", "d.npz"]  # no temporary files left
  data = bytearray(open(path + ".npz", "rb").read())
  if damage == "truncate":  # a copy cut short
    data = data[:len(data) // 2]
  else:  # flipped bytes in the compressed arrays
    for i in range(8):
      data[len(data) // 3 + i] ^= 0xFF
  open(path + ".npz", "wb").write(data)
  with pytest.raises(D.DataError, match=r"d\.npz cannot be read, it is damaged or incomplete"):
    D.load(path)
  D.save(logged, path)
  open(path + ".json", "w").write('{"env": "dmc/cartpole_bal')
  with pytest.raises(D.DataError, match=r"d\.json cannot be read"):
    D.load(path)
