"""Helpers for the Colab notebooks in notebooks/: run a binary as a user would, read its
learning curves, plot them, and show saved figures.

Each notebook reads its budget from the environment (`NOTEBOOK_BUDGET`: "tiny" is CI's
smoke run, seconds of training; "small", the default, is meant for a Colab GPU: minutes
to an hour, not timed)
and its output directory from `NOTEBOOK_RUNS` (default runs/notebooks).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any, Mapping, Sequence

import numpy as np

# The plotting modules select matplotlib's Agg backend when imported (the binaries write
# files). Imported here, before the notebook's `%matplotlib inline`, so that no later
# import switches a notebook's inline figures off.
from evaluation import plots as _evaluation_plots  # pylint: disable=unused-import
from experiments import plots as _experiment_plots  # pylint: disable=unused-import

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def budget(choices: Mapping[str, Any]) -> tuple[str, Any]:
  """(name, settings) of the budget named by $NOTEBOOK_BUDGET (default "small"); a name
  not in `choices` is a ValueError that lists them."""
  name = os.environ.get("NOTEBOOK_BUDGET", "small")
  if name not in choices:
    raise ValueError(f"NOTEBOOK_BUDGET={name!r} is not one of {sorted(choices)}")
  return name, copy.deepcopy(choices[name])


def runs_dir(name: str) -> str:
  """<$NOTEBOOK_RUNS or runs/notebooks>/<name>, created; the notebook's outputs go there."""
  path = os.path.join(os.environ.get("NOTEBOOK_RUNS", os.path.join(ROOT, "runs", "notebooks")),
                      name)
  os.makedirs(path, exist_ok=True)
  return path


def run(module: str, *flags: str) -> str:
  """`python -m module flags...` from the repository root, its output echoed as it comes
  (progress included) -> the whole output. Raises RuntimeError with the last lines on a
  non-zero exit."""
  cmd = [sys.executable, "-m", module, *map(str, flags)]
  print("$ python -m", module, " ".join(map(str, flags)), flush=True)
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
  lines = []
  for line in proc.stdout:
    # brax's deprecation warning (two lines) drowns the progress; everything else is shown
    if "Warning:" not in line and not line.lstrip().startswith("warnings.warn("):
      print(line, end="", flush=True)
    lines.append(line)
  if proc.wait() != 0:
    raise RuntimeError(f"{module} exited with {proc.returncode}:\n" + "".join(lines[-20:]))
  return "".join(lines)


def curve(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """A training run's evaluations: env steps [C] and eval return [seeds, C]."""
  from experiments.runner import _read_metrics  # pylint: disable=import-outside-toplevel
  rows = [r for r in _read_metrics(os.path.join(workdir, "metrics.jsonl")) if "eval_return" in r]
  seeds = sorted({r["seed"] for r in rows})
  at = {(r["chunk"], r["seed"]): r for r in rows}
  chunks = sorted({c for c, _ in at if all((c, s) in at for s in seeds)})  # complete ones
  steps = np.array([at[(c, seeds[0])]["env_steps"] for c in chunks])
  returns = np.array([[at[(c, s)]["eval_return"] for c in chunks] for s in seeds], float)
  return steps, returns


def plot_curves(runs: Mapping[str, str], ax, title: str = "") -> None:
  """Mean eval return over seeds (shaded: min to max) against env steps, one line per
  {label: workdir}."""
  for label, workdir in runs.items():
    steps, returns = curve(workdir)
    ax.plot(steps, returns.mean(0), label=f"{label} ({returns.shape[0]} seeds)")
    ax.fill_between(steps, returns.min(0), returns.max(0), alpha=0.2)
  ax.set_xlabel("env steps")
  ax.set_ylabel("evaluation return")
  ax.set_title(title)
  ax.legend()


def curves_beside(runs: Mapping[str, str], path: str, title: str, recorded: str,
                  recorded_title: str):
  """Plots the {label: workdir} learning curves to `path` and shows them beside the
  recorded figure `recorded` -> the figure."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(6, 4))
  plot_curves(runs, ax, title)
  fig.savefig(path)
  plt.close(fig)
  return show_images([path, recorded], [title, recorded_title])


def show_images(paths: Sequence[str], titles: Sequence[str], width: float = 7.0):
  """The saved figures side by side (matplotlib) -> the figure."""
  import matplotlib.image as mpimg  # pylint: disable=import-outside-toplevel
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, len(paths), figsize=(width * len(paths), width * 0.7),
                           squeeze=False)
  for ax, path, title in zip(axes[0], paths, titles):
    ax.imshow(mpimg.imread(path))
    ax.set_title(title)
    ax.axis("off")
  fig.tight_layout()
  return fig
