"""Shared test settings: quiet logging, no display probing, a per-run compilation cache."""

import os
import shutil
import tempfile

os.environ.setdefault("MUJOCO_GL", "disable")

import jax  # pylint: disable=wrong-import-position
from absl import logging  # pylint: disable=wrong-import-position

logging.set_verbosity(logging.WARNING)

_CACHE_VAR = "OFFPOLICY_LAB_TEST_JIT_CACHE"


def pytest_configure(config):
  """Many tests compile the same programs (fresh closures, xdist workers). A compilation
  cache private to this pytest run, shared by its xdist workers (they inherit the
  variable) and removed at the end, turns those repeats into hits; results are unaffected."""
  if _CACHE_VAR not in os.environ:
    os.environ[_CACHE_VAR] = tempfile.mkdtemp(prefix="offpolicy-lab-jit-")
    config.owns_jit_cache = True
  jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_VAR])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_unconfigure(config):
  if getattr(config, "owns_jit_cache", False):
    shutil.rmtree(os.environ.pop(_CACHE_VAR), ignore_errors=True)
