"""Hyperparameter grid entries ('key=v1|v2|...') as experiments.sweep and experiments.ops
take them. Pure Python: a binary parses its flags before jax starts (a multi-host sweep
must call jax.distributed.initialize first)."""

from __future__ import annotations


def canonical_value(value: str):
  """A value as compared for repeats: the number for numbers ('1e-3' = '0.001')."""
  try:
    return float(value)
  except ValueError:
    return value


def grid_values(entry: str, shown: str, form: str) -> tuple[str, list[str]]:
  """'key=v1|v2|...' -> (key, [value strings]), for the grids of experiments.sweep and
  experiments.ops. ValueError for a malformed entry (naming `form` and `shown`, the
  flag's value as given) or a repeated value."""
  key, eq, values = entry.partition("=")
  vals = values.split("|")
  if not eq or not key or not all(vals):
    raise ValueError(f"--grid takes {form}, got {shown!r}")
  if len({canonical_value(v) for v in vals}) < len(vals):
    raise ValueError(f"--grid repeats a value in {shown!r}")
  return key, vals
