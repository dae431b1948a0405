"""`envs.make(name, **kwargs)`: names are `backend/task` (see `names()`)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings

from envs import dmc_physics
from envs.backends import BackendEnv
from envs.native_dmc import NativeDMCEnv
from envs.playground import (FIDELITY_MODES, NOT_REPRODUCED, RESIDUAL, RESIDUAL_ALL,
                             SHIPPED_DIFFERENCES, PlaygroundEnv, domain)
from envs.types import Env
from envs.wrappers import AUTO_RESET_MODES, AutoReset, EpisodeLimit

BRAX_TASKS = ("ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup",
              "inverted_double_pendulum", "inverted_pendulum", "pusher", "reacher",
              "walker2d")
# Left out: swimmer, whose fluid model in Brax 0.14.2 calls `jnp.clip(a_min=...)`, which
# jax 0.10 removed (it fails at the first step); dmc/swimmer_swimmer6 is the swimmer here.

# dm_control `domain_task` -> MuJoCo Playground class name, for the tasks Playground ports.
# Left out: reacher_easy/hard, whose Playground 0.2.0 model builder calls
# `MjSpec.find_body`, which mujoco 3.17 no longer has (they stay in dmc_native/).
PLAYGROUND_DMC = {
    "acrobot_swingup": "AcrobotSwingup",
    "acrobot_swingup_sparse": "AcrobotSwingupSparse",
    "ball_in_cup_catch": "BallInCup",
    "cartpole_balance": "CartpoleBalance",
    "cartpole_balance_sparse": "CartpoleBalanceSparse",
    "cartpole_swingup": "CartpoleSwingup",
    "cartpole_swingup_sparse": "CartpoleSwingupSparse",
    "cheetah_run": "CheetahRun",
    "finger_spin": "FingerSpin",
    "finger_turn_easy": "FingerTurnEasy",
    "finger_turn_hard": "FingerTurnHard",
    "fish_swim": "FishSwim",
    "hopper_hop": "HopperHop",
    "hopper_stand": "HopperStand",
    "humanoid_stand": "HumanoidStand",
    "humanoid_walk": "HumanoidWalk",
    "humanoid_run": "HumanoidRun",
    "pendulum_swingup": "PendulumSwingup",
    "point_mass_easy": "PointMass",
    "swimmer_swimmer6": "SwimmerSwimmer6",
    "walker_run": "WalkerRun",
    "walker_stand": "WalkerStand",
    "walker_walk": "WalkerWalk",
}

# dmc/ tasks whose reset is costly relative to a step default to cached auto-resets.
_CACHED_RESET_DEFAULT = ("cheetah_run",)
# Steps before truncation when `episode_length` is not given.
DEFAULT_EPISODE_LENGTH = 1000

_COMMON_KWARGS = {
    "episode_length": f"int > 0, steps before truncation (default {DEFAULT_EPISODE_LENGTH})",
    "auto_reset": f"one of {AUTO_RESET_MODES}, or None for no auto-reset",
}


class EnvError(ValueError):
  """Unknown env name or bad keyword argument; the message lists what exists."""


@functools.lru_cache(maxsize=None)
def _native_tasks() -> dict[str, tuple[str, str]]:
  import os  # pylint: disable=import-outside-toplevel
  os.environ.setdefault("MUJOCO_GL", "disable")
  from dm_control import suite  # pylint: disable=import-outside-toplevel
  return {f"{d}_{t}": (d, t) for d, t in suite.ALL_TASKS}


def names(backend: str | None = None, details: bool = False) -> list[str] | dict[str, dict]:
  """All known env names (`brax/...`, `dmc/...`, `dmc_native/...`), optionally of one backend.

  With `details`, a dict name -> {'reproduces_dm_control': True for dmc_native/ and for
  dmc/ at its default fidelity unless its domain is in `NOT_REPRODUCED`, None
  for brax/; 'note': what still differs from dm_control, '' if nothing}.
  """
  out = ([f"brax/{t}" for t in BRAX_TASKS] + [f"dmc/{t}" for t in PLAYGROUND_DMC]
         + [f"dmc_native/{t}" for t in _native_tasks()])
  out = [n for n in out if backend is None or n.split("/")[0] == backend]
  if not details:
    return out

  def info(name):
    kind, task = name.split("/", 1)
    if kind != "dmc":
      return {"reproduces_dm_control": True if kind == "dmc_native" else None, "note": ""}
    dom = domain(task)
    note = "; ".join(x for x in (NOT_REPRODUCED.get(dom, ""), RESIDUAL.get(dom, ""),
                                 RESIDUAL_ALL) if x)
    return {"reproduces_dm_control": dom not in NOT_REPRODUCED, "note": note}

  return {n: info(n) for n in out}


def _split(name: str) -> tuple[str, str]:
  backend, _, task = name.partition("/")
  known = {"brax": BRAX_TASKS, "dmc": tuple(PLAYGROUND_DMC)}
  if backend in known and task in known[backend]:
    return backend, task
  if backend == "dmc_native" and task in _native_tasks():
    return backend, task
  raise EnvError(f"unknown env {name!r}; known envs: {', '.join(names())}")


def _check_kwargs(name: str, kwargs: dict, allowed: dict[str, str]) -> None:
  bad = sorted(set(kwargs) - set(allowed))
  if bad:
    listing = "; ".join(f"{k}: {v}" for k, v in sorted(allowed.items()))
    raise EnvError(f"{name}: unknown keyword argument(s) {bad}; accepted: {listing}")


def _brax_kwargs(task: str) -> dict[str, str]:
  from brax import envs as brax_envs  # pylint: disable=import-outside-toplevel
  params = inspect.signature(brax_envs._envs[task].__init__).parameters  # pylint: disable=protected-access
  out = {k: "brax env argument" for k, p in params.items()
         if k not in ("self", "kwargs") and p.kind != p.VAR_KEYWORD}
  out["backend"] = "brax physics pipeline: generalized (default), positional, spring, mjx"
  out["n_frames"] = "physics steps per env step"
  return out


def _playground_kwargs(task: str) -> dict[str, str]:
  from mujoco_playground import dm_control_suite  # pylint: disable=import-outside-toplevel
  cfg = dm_control_suite.get_default_config(PLAYGROUND_DMC[task])
  out = {k: f"playground config (default {v!r})" for k, v in cfg.items()
         if k not in ("vision", "vision_config", "episode_length", "action_repeat")}
  out["impl"] = "MJX implementation: 'jax' (default here; 'warp' is ~50x slower on CPU)"
  out["fidelity"] = (f"one of {FIDELITY_MODES}: corrected towards dm_control's physics, "
                     "observations and resets (default; _exact: no line-search cap), or "
                     "Playground's port as shipped")
  return out


def _playground_env(name: str, task: str, kwargs: dict, episode_length: int) -> PlaygroundEnv:
  """Playground's port of `task`, corrected towards dm_control unless fidelity='playground'."""
  # pylint: disable=import-outside-toplevel,protected-access
  from mujoco import mjx
  from mujoco_playground import dm_control_suite
  fidelity = kwargs.pop("fidelity", "dm_control")
  if fidelity not in FIDELITY_MODES:
    raise EnvError(f"{name}: fidelity must be one of {FIDELITY_MODES}, got {fidelity!r}")
  if fidelity == "playground":
    warnings.warn(f"{name} with fidelity='playground' does not reproduce dm_control: "
                  f"{SHIPPED_DIFFERENCES[domain(task)]} (see envs.playground)", stacklevel=3)
  elif domain(task) in NOT_REPRODUCED:
    warnings.warn(f"{name} does not fully reproduce dm_control: "
                  f"{NOT_REPRODUCED[domain(task)]}", stacklevel=3)
  overrides = {"impl": "jax"}
  if fidelity != "playground":
    overrides.update(dmc_physics.physics_overrides(task))
  overrides.update(kwargs)
  inner = dm_control_suite.load(PLAYGROUND_DMC[task], config_overrides=overrides)
  if fidelity != "playground":
    dmc_physics.restore_options(inner._mj_model, task, exact=fidelity == "dm_control_exact")
    inner._mjx_model = mjx.put_model(inner._mj_model, impl=overrides["impl"])
  return PlaygroundEnv(name, task, inner, episode_length, fidelity)


@contextlib.contextmanager
def _mjx_on_local_device():
  """MJX's put_model, as Brax and Playground call it (no device), puts the model on
  jax.devices()[0]; under jax.distributed that is process 0's device, which the other
  processes cannot use (a multi-host sweep, experiments.sweep, runs each process's own
  programs on its own devices). While an env is built in a multi-process job, put_model
  defaults to this process's first device instead. One process: nothing changes."""
  import jax  # pylint: disable=import-outside-toplevel
  # is_initialized, not process_count: the latter would start the backends, after which
  # jax.distributed.initialize can no longer be called
  if not jax.distributed.is_initialized() or jax.process_count() == 1:
    yield
    return
  from mujoco import mjx  # pylint: disable=import-outside-toplevel
  put_model = mjx.put_model

  def local_put_model(m, device=None, **kwargs):
    return put_model(m, device=device or jax.local_devices()[0], **kwargs)

  mjx.put_model = local_put_model
  try:
    yield
  finally:
    mjx.put_model = put_model


def make(name: str, **kwargs) -> Env:
  """Builds an env: `make("brax/inverted_pendulum")`, `make("dmc/cartpole_balance")`.

  Args:
    name: `backend/task`; `names()` lists them. Unknown names raise `EnvError`.
    **kwargs: `episode_length` (default 1000), `auto_reset` ('fresh' | 'cached' |
      None; default 'fresh', 'cached' for dmc/cheetah_run; ignored by dmc_native),
      plus backend arguments (brax: env constructor arguments and `backend`;
      dmc: `fidelity` ('dm_control' | 'playground', see `envs.playground`) and
      Playground config keys such as `impl`, `ctrl_dt`). Unknown keys raise
      `EnvError` listing the accepted ones.

  Returns:
    An `Env`. `brax/` and `dmc/` envs are pure and jittable, stepped one env at a time
    (vmap for batches); `dmc_native/` is host-side (see `envs.native_dmc`).
  """
  backend, task = _split(name)
  episode_length = kwargs.pop("episode_length", DEFAULT_EPISODE_LENGTH)
  auto_reset = kwargs.pop("auto_reset",
                          "cached" if backend == "dmc" and task in _CACHED_RESET_DEFAULT
                          else "fresh")
  if not isinstance(episode_length, int) or episode_length <= 0:
    raise EnvError(f"{name}: episode_length must be a positive int, got {episode_length!r}")
  if auto_reset is not None and auto_reset not in AUTO_RESET_MODES:
    raise EnvError(f"{name}: auto_reset must be one of {AUTO_RESET_MODES} or None, "
                   f"got {auto_reset!r}")

  if backend == "dmc_native":
    _check_kwargs(name, kwargs, dict(_COMMON_KWARGS))
    domain, dtask = _native_tasks()[task]
    return NativeDMCEnv(name, domain, dtask, episode_length)

  if backend == "brax":
    _check_kwargs(name, kwargs, {**_COMMON_KWARGS, **_brax_kwargs(task)})
    from brax import envs as brax_envs  # pylint: disable=import-outside-toplevel
    with _mjx_on_local_device():
      base: Env = BackendEnv(name, brax_envs.get_environment(task, **kwargs), episode_length)
  else:
    _check_kwargs(name, kwargs, {**_COMMON_KWARGS, **_playground_kwargs(task)})
    with _mjx_on_local_device():
      base = _playground_env(name, task, kwargs, episode_length)
    low, high = base.backend_env.mj_model.actuator_ctrlrange.T
    if not ((low == -1).all() and (high == 1).all()):
      raise EnvError(f"{name}: actuator range {low}..{high} is not [-1, 1]")

  env: Env = EpisodeLimit(base, episode_length)
  if auto_reset is not None:
    env = AutoReset(env, auto_reset)
  return env
