"""Trees of floats and arrays as strict JSON (json.dump(..., allow_nan=False) accepts them)."""

from typing import Any

import numpy as np


def clean(x: Any) -> Any:
  """dicts, lists and arrays of numbers -> plain lists and floats: NaN (undefined) -> None,
  ±inf -> "inf" / "-inf"; anything else as is."""
  if isinstance(x, dict):
    return {k: clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim > 0):
    return [clean(v) for v in x]
  if isinstance(x, (float, np.floating)) or (isinstance(x, np.ndarray) and x.ndim == 0):
    v = float(x)
    return None if np.isnan(v) else ("inf" if v > 0 else "-inf") if np.isinf(v) else v
  return x
