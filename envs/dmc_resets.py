"""dm_control's initial-state distributions for the `dmc/` tasks whose Playground reset differs.

Each function follows the task's `initialize_episode` in `dm_control.suite` (named in its
docstring) and maps (key, mj_model, qpos [nq] from Playground's reset) to (qpos [nq],
qvel [nv]). Differences they correct (issue 13, Playground 0.2.0):

- cartpole: Playground reuses keys, so swing-up's cart velocity equals its cart position
  and balance's pole angle and cart velocity come from one draw; dm_control draws each
  independently.
- pendulum_swingup: angle U(0, π) in Playground, U(−π, π) in dm_control.
- ball_in_cup_catch: Playground starts every episode from the same state; dm_control
  draws the ball's position and rejects positions in contact.
- finger_*: Playground sets the spinner's angle from the finger's key (1.636 × the
  proximal angle) and accepts states in contact; dm_control draws all three and rejects.
- fish_swim: Playground starts the fish 0.1 lower (z = 0, dm_control keeps qpos0's 0.1).
- humanoid_*: Playground starts standing upright; dm_control draws every limited joint,
  a random root orientation and rejects states in contact.

Rejection sampling runs in a `lax.while_loop`: at most `MAX_ATTEMPTS` draws (dm_control's
finger gives up after 1000 and raises; here the last draw is kept).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx

MAX_ATTEMPTS = 1000
# Joint types as ints (numpy ints never equal pybind11 enum members).
_FREE, _BALL, _SLIDE, _HINGE = (int(t) for t in (
    mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_BALL, mujoco.mjtJoint.mjJNT_SLIDE,
    mujoco.mjtJoint.mjJNT_HINGE))


def _adr(m: mujoco.MjModel, joint: str) -> int:
  return int(m.jnt_qposadr[m.joint(joint).id])


def randomize_joints(key: jax.Array, m: mujoco.MjModel, qpos: jax.Array) -> jax.Array:
  """dm_control's `randomizers.randomize_limited_and_rotational_joints`: limited hinges
  and slides uniform in range, unlimited hinges U(−π, π), unlimited ball joints a
  normalised N(0, I₄) quaternion, free joints a normalised U(0, 1)⁴ quaternion (dm_control's
  `rand`, kept there for its benchmarks) at the same position; limited ball joints a
  rotation about a N(0, I₃) axis by an angle U(0, range max). qpos [nq] -> [nq]."""
  keys = jax.random.split(key, m.njnt)
  for j in range(m.njnt):
    adr, kind, limited = int(m.jnt_qposadr[j]), int(m.jnt_type[j]), bool(m.jnt_limited[j])
    lo, hi = (float(x) for x in m.jnt_range[j])
    if kind in (_HINGE, _SLIDE):
      if limited:
        qpos = qpos.at[adr].set(jax.random.uniform(keys[j], minval=lo, maxval=hi))
      elif kind == _HINGE:
        qpos = qpos.at[adr].set(jax.random.uniform(keys[j], minval=-jnp.pi, maxval=jnp.pi))
    elif kind == _BALL:
      if limited:  # dm_control's random_limited_quaternion: axis ~ N(0, I₃), angle U(0, hi)
        k_axis, k_angle = jax.random.split(keys[j])
        axis = jax.random.normal(k_axis, (3,))
        half = 0.5 * hi * jax.random.uniform(k_angle)
        quat = jnp.concatenate([jnp.cos(half)[None], jnp.sin(half) * axis / jnp.linalg.norm(axis)])
      else:
        quat = jax.random.normal(keys[j], (4,))
        quat = quat / jnp.linalg.norm(quat)
      qpos = qpos.at[adr:adr + 4].set(quat)
    elif kind == _FREE:
      quat = jax.random.uniform(keys[j], (4,))
      qpos = qpos.at[adr + 3:adr + 7].set(quat / jnp.linalg.norm(quat))
  return qpos


def in_contact(model: mjx.Model, qpos: jax.Array, data: mjx.Data) -> jax.Array:
  """Whether `qpos` has any contact (dm_control's `ncon > 0` after `mj_forward`)."""
  data = mjx.fwd_position(model, data.replace(qpos=qpos))
  contact = data._impl.contact  # pylint: disable=protected-access
  return jnp.any(contact.dist < contact.includemargin)


def contact_free(draw, key: jax.Array, model: mjx.Model, data: mjx.Data) -> jax.Array:
  """Redraws `draw(key) -> qpos` until it is out of contact (≤ MAX_ATTEMPTS draws)."""

  def cond(carry):
    i, _, penetrating = carry
    return penetrating & (i < MAX_ATTEMPTS)

  def body(carry):
    i, _, _ = carry
    qpos = draw(jax.random.fold_in(key, i))
    return i + 1, qpos, in_contact(model, qpos, data)

  first = draw(jax.random.fold_in(key, 0))
  carry = (jnp.ones((), jnp.int32), first, in_contact(model, first, data))
  return jax.lax.while_loop(cond, body, carry)[1]


def _normal_qvel(key, m, scale):
  return scale * jax.random.normal(key, (m.nv,))


def cartpole_swingup(key, m, qpos, model, data):
  """cartpole.Balance(swing_up=True): slider 0.01·N, hinge π + 0.01·N, qvel 0.01·N."""
  del model, data
  k1, k2, k3 = jax.random.split(key, 3)
  qpos = qpos.at[_adr(m, "slider")].set(0.01 * jax.random.normal(k1))
  qpos = qpos.at[_adr(m, "hinge_1")].set(jnp.pi + 0.01 * jax.random.normal(k2))
  return qpos, _normal_qvel(k3, m, 0.01)


def cartpole_balance(key, m, qpos, model, data):
  """cartpole.Balance(swing_up=False): slider U(−.1, .1), hinge U(−.034, .034), qvel 0.01·N."""
  del model, data
  k1, k2, k3 = jax.random.split(key, 3)
  qpos = qpos.at[_adr(m, "slider")].set(jax.random.uniform(k1, minval=-0.1, maxval=0.1))
  qpos = qpos.at[_adr(m, "hinge_1")].set(jax.random.uniform(k2, minval=-0.034, maxval=0.034))
  return qpos, _normal_qvel(k3, m, 0.01)


def pendulum(key, m, qpos, model, data):
  """pendulum.SwingUp: hinge U(−π, π), at rest."""
  del model, data
  qpos = qpos.at[_adr(m, "hinge")].set(jax.random.uniform(key, minval=-jnp.pi, maxval=jnp.pi))
  return qpos, jnp.zeros(m.nv)


def ball_in_cup(key, m, qpos, model, data):
  """ball_in_cup.BallInCup: ball_x U(−.2, .2), ball_z U(.2, .5), until out of contact."""
  base = jnp.asarray(m.qpos0, qpos.dtype)

  def draw(k):
    kx, kz = jax.random.split(k)
    q = base.at[_adr(m, "ball_x")].set(jax.random.uniform(kx, minval=-0.2, maxval=0.2))
    return q.at[_adr(m, "ball_z")].set(jax.random.uniform(kz, minval=0.2, maxval=0.5))

  return contact_free(draw, key, model, data), jnp.zeros(m.nv)


def finger(key, m, qpos, model, data):
  """finger `_set_random_joint_angles`: all joints drawn, until out of contact."""
  return contact_free(lambda k: randomize_joints(k, m, qpos), key, model, data), jnp.zeros(m.nv)


def fish(key, m, qpos, model, data):
  """fish.Swim: Playground's draw, with the root at qpos0's position (z = 0.1)."""
  del key, model, data
  return qpos.at[:3].set(jnp.asarray(m.qpos0[:3], qpos.dtype)), jnp.zeros(m.nv)


def humanoid(key, m, qpos, model, data):
  """humanoid.Humanoid: every joint drawn (root orientation too), until out of contact."""
  base = jnp.asarray(m.qpos0, qpos.dtype)
  return contact_free(lambda k: randomize_joints(k, m, base), key, model, data), jnp.zeros(m.nv)


RESETS = {
    "cartpole_swingup": cartpole_swingup, "cartpole_swingup_sparse": cartpole_swingup,
    "cartpole_balance": cartpole_balance, "cartpole_balance_sparse": cartpole_balance,
    "pendulum_swingup": pendulum, "ball_in_cup_catch": ball_in_cup,
    "finger_spin": finger, "finger_turn_easy": finger, "finger_turn_hard": finger,
    "fish_swim": fish, "humanoid_stand": humanoid, "humanoid_walk": humanoid,
    "humanoid_run": humanoid,
}
