"""Scripts that measure speed and learning quality; results go to BENCHMARKS.md."""
