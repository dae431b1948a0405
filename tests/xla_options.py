"""XLA's own compile options, for the few test computations that run long.

conftest.py compiles everything with fast flags (optimisation level 0, no CPU fusion
emitters), which suits the many short runs. A computation that runs for seconds once
compiled is faster with XLA's defaults: `jax.jit(f, compiler_options=OPTIMISED)`. The
interval tests' bootstrap fixture took 137 s in the suite with the fast flags, 31 s with
these options.
"""

OPTIMISED = {"xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True}
