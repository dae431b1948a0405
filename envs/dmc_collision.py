"""MuJoCo's contacts on capsules (plane-, sphere- and capsule-capsule), for MJX (issue 13).

MJX 3.3's plane-capsule contact takes a fixed first friction direction ((0, 1, 0) or
(0, 0, 1)) whenever the capsule's axis is within 30 degrees of the plane's normal;
MuJoCo's projects the axis onto the plane whatever the angle. With dm_control's
pyramidal friction cones that turns the friction pyramid: humanoid's accelerations
differ by up to 37x from its first floor contact (`benchmarks/dmc_substeps.py`).

MJX 3.3 also regularises its closest-point solves with a `+ 1e-6` in the denominator
(`mjx._src.math.closest_segment_to_segment_points`, `closest_segment_point`), so its
contacts on capsules differ from MuJoCo's, in float64 as in float32:

- capsule-capsule: the bias is about 1e-6 / sin^2 of the angle between the axes.
  hopper's randomised start often folds the thigh against the torso (hip range
  -170..10 degrees); there the normal is off by 3.5e-5, the constraint force by 4e-4
  relative, and joint velocities by 4.5e-4 after one step.
- sphere-capsule: the projection onto the axis is off by 1e-6 / length^2 (1e-5 on
  humanoid's shin), the normal by 2e-5 when a hand touches a leg.

`plane_capsule`, `sphere_capsule` and `capsule_capsule` below are MuJoCo's
`mjc_PlaneCapsule`, `mjc_SphereCapsule` and `mjc_CapsuleCapsule`
(engine_collision_primitive.c): the projected axis as first tangent, unregularised
solves, MuJoCo's clipping order, `_SphereSphere`'s normal for coincident points and
`mju_normalize3`'s zero threshold.

One difference remains: for exactly parallel axes (|det| < mjMINVAL) MuJoCo adds two
contacts (3.17: the two ends of the overlap); MJX's contact array holds one per capsule
pair, so this returns one of MuJoCo's two (the deepest end-point candidate).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
from mujoco.mjx._src import collision_driver, collision_primitive, math
from mujoco.mjx._src.collision_types import GeomInfo
from mujoco.mjx._src.types import GeomType

_MINVAL = 1e-15  # mjMINVAL


def _normalize(x):
  """MuJoCo's `mju_normalize3` -> (x / |x| [3], |x| []): (1, 0, 0) below mjMINVAL (MJX's
  `normalize_with_norm` takes any vector with all components <= 1e-8 for zero)."""
  length = jnp.sqrt(x @ x)
  unit = x / jnp.where(length < _MINVAL, 1.0, length)
  return jnp.where(length < _MINVAL, jnp.array([1.0, 0.0, 0.0], x.dtype), unit), length


def _sphere_sphere(pos1, r1, axis1, pos2, r2, axis2):
  """MuJoCo's `_SphereSphere` -> (dist [], pos [3], normal [3])."""
  n, length = _normalize(pos2 - pos1)
  n = jnp.where(length < _MINVAL, _normalize(jnp.cross(axis1, axis2))[0], n)
  dist = length - r1 - r2
  return dist, pos1 + n * (r1 + dist / 2), n


def _clip(x):
  return jnp.clip(x, -1.0, 1.0)


def _segment_params(a1, a2, dif):
  """MuJoCo's closest-point parameters x1, x2 in [-1, 1] on the scaled axes a1, a2 [3]
  (capsule centres' difference `dif` [3]); the general (non-parallel) case."""
  ma, mb, mc = a1 @ a1, -(a1 @ a2), a2 @ a2
  u, v = -(a1 @ dif), a2 @ dif
  det = ma * mc - mb * mb
  safe = jnp.where(jnp.abs(det) >= _MINVAL, det, 1.0)
  x1 = (mc * u - mb * v) / safe
  x2 = (ma * v - mb * u) / safe
  x2 = jnp.where(x1 > 1, (v - mb) / mc, jnp.where(x1 < -1, (v + mb) / mc, x2))
  x1 = _clip(x1)
  x1 = jnp.where(x2 > 1, _clip((u - mb) / ma), jnp.where(x2 < -1, _clip((u + mb) / ma), x1))
  return x1, _clip(x2), det, (ma, mb, mc, u, v)


@collision_primitive.collider(ncon=1)
def capsule_capsule(cap1: GeomInfo, cap2: GeomInfo):
  """One contact between two capsules, as MuJoCo's `mjc_CapsuleCapsule`
  -> (dist [], pos [3], frame [3, 3])."""
  axis1, axis2 = cap1.mat[:, 2], cap2.mat[:, 2]
  a1, a2 = axis1 * cap1.size[1], axis2 * cap2.size[1]
  r1, r2 = cap1.size[0], cap2.size[0]
  x1, x2, det, (ma, mb, mc, u, v) = _segment_params(a1, a2, cap1.pos - cap2.pos)

  def contact(x1, x2):
    return _sphere_sphere(cap1.pos + a1 * x1, r1, axis1, cap2.pos + a2 * x2, r2, axis2)

  general = contact(x1, x2)
  # Parallel axes: MuJoCo's four end-point candidates, in its order; keep the deepest.
  candidates = [contact(1.0, _clip((v - mb) / mc)), contact(-1.0, _clip((v + mb) / mc)),
                contact(_clip((u - mb) / ma), 1.0), contact(_clip((u + mb) / ma), -1.0)]
  stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *candidates)
  best = jnp.argmin(stacked[0])
  parallel = jax.tree_util.tree_map(lambda x: x[best], stacked)
  dist, pos, n = jax.tree_util.tree_map(
      lambda g, p: jnp.where(jnp.abs(det) >= _MINVAL, g, p), general, parallel)
  return dist, pos, math.make_frame(n)


@collision_primitive.collider(ncon=1)
def sphere_capsule(sphere: GeomInfo, cap: GeomInfo):
  """One contact between a sphere and a capsule, as MuJoCo's `mjc_SphereCapsule`
  -> (dist [], pos [3], frame [3, 3])."""
  axis = cap.mat[:, 2] * cap.size[1]
  x = _clip(axis @ (sphere.pos - cap.pos) / (axis @ axis))
  dist, pos, n = _sphere_sphere(sphere.pos, sphere.size[0], sphere.mat[:, 2],
                                cap.pos + axis * x, cap.size[0], cap.mat[:, 2])
  return dist, pos, math.make_frame(n)


@collision_primitive.collider(ncon=2)
def plane_capsule(plane: GeomInfo, cap: GeomInfo):
  """Two contacts (the capsule's end spheres) between a plane and a capsule, as MuJoCo's
  `mjc_PlaneCapsule` -> (dist [2], pos [2, 3], frame [2, 3, 3]).

  The first tangent is the capsule's axis projected on the plane, whatever the angle
  (`mju_makeFrame` only falls back to a fixed axis when the given tangent is zero).
  """
  n, axis = plane.mat[:, 2], cap.mat[:, 2]
  t1 = _normalize(axis - n * (n @ axis))[0]
  frame = jnp.stack([n, t1, jnp.cross(n, t1)])
  dist, pos = [], []
  for end in (cap.pos + axis * cap.size[1], cap.pos - axis * cap.size[1]):
    depth = (end - plane.pos) @ n - cap.size[0]
    dist.append(depth)
    pos.append(end - n * (depth / 2 + cap.size[0]))
  return jnp.stack(dist), jnp.stack(pos), jnp.stack([frame, frame])


_MUJOCO = {(GeomType.PLANE, GeomType.CAPSULE): "plane_capsule",
           (GeomType.CAPSULE, GeomType.CAPSULE): "capsule_capsule",
           (GeomType.SPHERE, GeomType.CAPSULE): "sphere_capsule"}


@contextlib.contextmanager
def mujoco_capsules():
  """While tracing: MJX's collision driver uses `plane_capsule`, `sphere_capsule` and
  `capsule_capsule` from this module.

  The driver looks its table up when a step is traced, so a jitted step traced inside
  this context keeps MuJoCo's contacts; the table is restored on exit. Enter it inside
  the function that is jitted (as `envs.playground` does), not around `jax.jit(...)`,
  which traces at its first call. The functions are looked up by name here, so an
  ablation can swap them on this module.
  """
  table = collision_driver._COLLISION_FUNC  # pylint: disable=protected-access
  shipped = {key: table[key] for key in _MUJOCO}
  table.update({key: globals()[name] for key, name in _MUJOCO.items()})
  try:
    yield
  finally:
    table.update(shipped)
