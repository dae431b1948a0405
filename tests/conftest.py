"""Shared test settings: quiet logging, no display probing, fast XLA compilation, a per-run
compilation cache."""

import os
import shutil
import tempfile

os.environ.setdefault("MUJOCO_GL", "disable")
# The tests compile more than they run. XLA's CPU backend at optimisation level 0 and
# without its fusion emitters compiles 2.8x faster (a tiny SAC expert's programs: 7.6 s
# against 21.4 s; BENCHMARKS.md, "Test suite time"); code so compiled runs slower, so the
# long computations take XLA's own options (tests/xla_options.py). Set before jax starts,
# so that the subprocesses (binaries, notebooks) inherit it unless a test gives them its
# own XLA_FLAGS (test_sweep.py, test_ope_sweep.py do). Users' runs keep XLA's defaults.
FAST_COMPILE = "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

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


# The longest test files (minutes of compilation and training each, measured on CI's 2
# cores), started first, so that under `-n 2 --dist loadfile` the short files fill the
# end of the run instead of one long file running alone on one worker at the end.
_LONGEST_FIRST = (
    "tests/experiments/test_train.py", "tests/experiments/test_faults.py",
    "tests/notebooks/test_ailboost_notebook.py", "tests/experiments/test_sweep.py",
    "tests/experiments/test_ope_sweep.py", "tests/notebooks/test_offline_rl_notebook.py",
    "tests/envs/test_dmc_fidelity.py", "tests/algorithms/test_offline_learning.py",
    "tests/algorithms/test_offpolicy_learning.py", "tests/experiments/test_offline_runs.py",
    "tests/notebooks/test_props_notebook.py", "tests/envs/test_protocol.py",
)


def pytest_collection_modifyitems(items):
  """Orders the test files longest first (the rest keep their order, after them)."""
  rank = {path: i for i, path in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
