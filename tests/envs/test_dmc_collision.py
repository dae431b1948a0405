"""`envs.dmc_collision`'s capsule contacts against MuJoCo's own.

The expected contacts come from MuJoCo C (`mj_forward` on a two-geom model, float64), so
the JAX functions run under `jax.enable_x64`. Each case also checks that MJX's shipped
function differs from MuJoCo there, the reason for the override.
"""

import types

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco.mjx._src import collision_primitive

from envs import dmc_collision

_CAPSULE_A = '<geom type="capsule" size="0.065 0.125" margin="10"/>'
_CAPSULE_B = '<geom type="capsule" size="0.04 0.165" margin="10"/>'
_SPHERE = '<geom type="sphere" size="0.04" margin="10"/>'
_PLANE = '<geom type="plane" size="5 5 0.1" margin="10"/>'


def _model(first, second):
  """A model whose geom 0 is `first` (in the world if a plane, else on a free body)
  and geom 1 is `second` on a free body."""
  body = lambda geom: f"<body><freejoint/>{geom}</body>"
  first = first if "plane" in first else body(first)
  return mujoco.MjModel.from_xml_string(
      f'<mujoco><option gravity="0 0 0"/><worldbody>{first}{body(second)}</worldbody>'
      "</mujoco>")


def _quat(axis, angle):
  axis = axis / np.linalg.norm(axis)
  return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def _poses(rng, n, bodies):
  """n poses (qpos) of `bodies` free bodies: the first at random, the second near it,
  its axis tilted from the first's by 1e-3..1 rad (near parallel is where MJX errs).
  With one body, its axis is 0..90 degrees from vertical."""
  out = []
  for _ in range(n):
    q1 = _quat(rng.normal(size=3), rng.uniform(0, np.pi))
    p1 = rng.normal(size=3) * 0.05
    if bodies == 1:
      tilt = _quat(np.array([*rng.normal(size=2), 0.0]), rng.uniform(0, np.pi / 2))
      out.append(np.concatenate([p1 + [0, 0, 0.1], tilt]))
      continue
    q2 = np.empty(4)
    mujoco.mju_mulQuat(q2, q1, _quat(rng.normal(size=3), 10 ** rng.uniform(-3, 0)))
    out.append(np.concatenate([p1, q1, p1 + rng.normal(size=3) * 0.1, q2]))
  return np.stack(out)


def _compare(first, second, ncon, ours, shipped, n=200):
  """(MuJoCo's, ours, MJX's shipped) contacts: (dist [n, c], pos [n, c, 3],
  frame [n, c, 3, 3]) for n random poses; c = `ncon` contacts per pose."""
  model, bodies = _model(first, second), 1 if "plane" in first else 2
  data = mujoco.MjData(model)
  ref, geoms = [], []
  for qpos in _poses(np.random.default_rng(0), n, bodies):
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    assert data.ncon == ncon and all((c.geom1, c.geom2) == (0, 1) for c in data.contact)
    ref.append([(c.dist, c.pos.copy(), c.frame.reshape(3, 3).copy()) for c in data.contact])
    geoms.append([(data.geom_xpos[g].copy(), data.geom_xmat[g].reshape(3, 3).copy(),
                   model.geom_size[g].copy()) for g in (0, 1)])
  ref = tuple(np.array([[c[k] for c in pose] for pose in ref]) for k in range(3))
  # Pose i is geoms (2i, 2i + 1) of a flat list, as MJX's collision driver passes pairs.
  flat = lambda k: np.stack([g[j][k] for g in geoms for j in (0, 1)])
  pairs = jnp.asarray(np.stack([np.arange(n) * 2, np.arange(n) * 2 + 1], 1))
  with jax.enable_x64(True):
    m = types.SimpleNamespace(geom_size=jnp.asarray(flat(2)))
    d = types.SimpleNamespace(geom_xpos=jnp.asarray(flat(0)), geom_xmat=jnp.asarray(flat(1)))
    run = lambda collider: tuple(np.asarray(x).reshape((n, ncon) + x.shape[1:])
                                 for x in collider(m, d, None, pairs))
    return ref, run(ours), run(shipped)


CASES = {
    "capsule_capsule": (_CAPSULE_A, _CAPSULE_B, 1),
    "sphere_capsule": (_SPHERE, _CAPSULE_B, 1),
    "plane_capsule": (_PLANE, _CAPSULE_B, 2),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def contacts(request):
  first, second, ncon = CASES[request.param]
  return request.param, _compare(first, second, ncon,
                                 getattr(dmc_collision, request.param),
                                 getattr(collision_primitive, request.param))


def test_contact_is_mujocos(contacts):
  """Depth, point and the whole contact frame (normal and tangents) equal MuJoCo's."""
  _, ((dist, pos, frame), ours, _) = contacts
  np.testing.assert_allclose(ours[0], dist, atol=1e-10)
  np.testing.assert_allclose(ours[1], pos, atol=1e-10)
  np.testing.assert_allclose(ours[2], frame, atol=1e-8)


def test_mjx_contact_differs(contacts):
  """MJX's own function differs from MuJoCo: capsule-capsule and sphere-capsule
  normals by > 1e-6 (its closest-point solves add 1e-6 to a denominator); plane-capsule
  tangents by > 0.1 (it falls back to a fixed tangent when the capsule's axis is within
  30 degrees of the normal, MuJoCo projects the axis whatever the angle)."""
  name, ((_, _, frame), _, shipped) = contacts
  if name == "plane_capsule":
    assert np.abs(shipped[2] - frame).max() > 0.1
  else:
    assert np.abs(shipped[2][..., 0, :] - frame[..., 0, :]).max() > 1e-6
