"""Preemption: SIGTERM asks a run to stop at its next checkpoint, not to die mid-chunk.

Schedulers and pods send SIGTERM some seconds before they kill. Inside `Preemption()`
the first SIGTERM only sets a flag; the training loop finishes its chunk, checkpoints,
and exits with `EXIT_PREEMPTED`, and the same command resumes exactly; a SIGTERM during
restore or compilation stops before the first chunk. Python runs the handler when the
main thread returns from the running XLA call, so `requested` (and the summary's
`seconds_from_sigterm`) count from then, and SIGTERMs during one call count as one; a
SIGTERM after the handler has run kills at once (the previous checkpoint is intact).
Multi-host runs under `jax.distributed` get JAX's own preemption service instead (it
installs its own handler); the loop asks orbax's `reached_preemption` every chunk, which
syncs all hosts on one step.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Optional

# sysexits.h's EX_TEMPFAIL: "temporary failure, the user is invited to retry".
EXIT_PREEMPTED = 75


def _distributed() -> bool:
  from jax._src import distributed  # pylint: disable=import-outside-toplevel
  return distributed.global_state.client is not None


class Preemption:
  """Context manager; `requested` is the time.time() of the first SIGTERM, or None."""

  def __init__(self):
    self.requested: Optional[float] = None
    self._previous = None

  def _handler(self, signum, frame):
    del frame
    if self.requested is None:
      self.requested = time.time()
    signal.signal(signum, signal.SIG_DFL)  # the next one kills

  def __enter__(self) -> "Preemption":
    if threading.current_thread() is threading.main_thread() and not _distributed():
      self._previous = signal.signal(signal.SIGTERM, self._handler)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
