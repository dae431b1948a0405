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


def _compare(first, second, ncon, ours, shipped, n=200, poses=None):
  """(MuJoCo's, ours, MJX's shipped) contacts: (dist [n, c], pos [n, c, 3],
  frame [n, c, 3, 3]) for n random poses (or `poses` [n, nq]); c = `ncon` contacts per
  pose."""
  model, bodies = _model(first, second), 1 if "plane" in first else 2
  data = mujoco.MjData(model)
  ref, geoms = [], []
  if poses is None:
    poses = _poses(np.random.default_rng(0), n, bodies)
  n = len(poses)
  for qpos in poses:
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


_UP = np.array([1.0, 0, 0, 0])
_ALONG_Y = _quat(np.array([1.0, 0, 0]), np.pi / 2)   # capsule axis along -y
_ALONG_X = _quat(np.array([0.0, 1, 0]), np.pi / 2)   # capsule axis along x


@pytest.mark.parametrize("name,poses", [
    # sphere 1e-9 off the capsule's axis: MuJoCo's normal points from the sphere's centre
    ("sphere_capsule", [np.concatenate([[1e-9, 0, 0], _UP, [0, 0, 0], _UP])]),
    # crossing capsules 1e-9 apart: the normal is the true one, not a fallback
    ("capsule_capsule", [np.concatenate([[0, 0, 0], _ALONG_X, [0, 0, -1e-9], _ALONG_Y])]),
    # a capsule 1e-9 rad from vertical on the floor, and one exactly vertical
    ("plane_capsule", [np.concatenate([[0, 0, 0.1], _quat(np.array([1.0, 0, 0]), 1e-9)]),
                       np.concatenate([[0, 0, 0.1], _UP])]),
])
def test_degenerate_contacts_are_mujocos(name, poses):
  """Near-zero vectors are normalised as MuJoCo does (zero only below 1e-15)."""
  first, second, ncon = CASES[name]
  (dist, pos, frame), ours, _ = _compare(first, second, ncon, getattr(dmc_collision, name),
                                         getattr(collision_primitive, name),
                                         poses=np.stack(poses))
  np.testing.assert_allclose(ours[0], dist, atol=1e-10)
  np.testing.assert_allclose(ours[2], frame, atol=1e-8)


def test_parallel_capsules_give_one_of_mujocos_contacts():
  """Exactly parallel axes: MuJoCo adds two contacts, MJX has room for one; it is one of
  MuJoCo's."""
  model = _model(_CAPSULE_A, _CAPSULE_B)
  data = mujoco.MjData(model)
  rng = np.random.default_rng(1)
  for _ in range(20):
    q = _quat(rng.normal(size=3), rng.uniform(0, np.pi))
    data.qpos[:] = np.concatenate([[0, 0, 0], q, rng.normal(size=3) * 0.05, q])
    mujoco.mj_forward(model, data)
    ref = [(c.dist, c.pos.copy()) for c in data.contact]
    with jax.enable_x64(True):
      m = types.SimpleNamespace(geom_size=jnp.asarray(model.geom_size[:2]))
      d = types.SimpleNamespace(geom_xpos=jnp.asarray(data.geom_xpos[:2]),
                                geom_xmat=jnp.asarray(data.geom_xmat[:2].reshape(2, 3, 3)))
      dist, pos, _ = dmc_collision.capsule_capsule(m, d, None, jnp.array([[0, 1]]))
    assert any(abs(float(dist[0]) - rd) < 1e-10 and np.abs(np.asarray(pos[0]) - rp).max() < 1e-10
               for rd, rp in ref), (dist, pos, ref)


def test_context_swaps_mjx_table_only_inside():
  from mujoco.mjx._src import collision_driver  # pylint: disable=import-outside-toplevel
  from mujoco.mjx._src.types import GeomType  # pylint: disable=import-outside-toplevel
  key = (GeomType.PLANE, GeomType.CAPSULE)
  shipped = collision_driver._COLLISION_FUNC[key]  # pylint: disable=protected-access
  with dmc_collision.mujoco_capsules():
    assert collision_driver._COLLISION_FUNC[key] is dmc_collision.plane_capsule  # pylint: disable=protected-access
  assert collision_driver._COLLISION_FUNC[key] is shipped  # pylint: disable=protected-access
