"""Exact nearest-neighbour search under jit: chunked brute force over an index.

PRDC (Ran et al. 2023) pulls the policy toward the dataset point nearest to (βs, π(s));
its authors query a scipy KD-tree on the host every actor step. A KD-tree does not run
inside a jitted, vmapped update, so we search exactly by brute force, in chunks of the
index so that memory stays at [queries, chunk] whatever the dataset's size:

  for each chunk C of the index: d²(q, x) = ‖x‖² − 2 q·x (+ ‖q‖², the same for every x)
  by one matrix product; keep the chunk's argmin, re-measured exactly as ‖q − x‖², and the
  better of it and the running best.

The matrix product makes the search run at matmul speed (GPU, TPU, BLAS on CPU), at
full float32 precision (`Precision.HIGHEST`: the default TF32 of recent GPUs misorders
near neighbours); the expanded form can still misorder two points of one chunk whose
distances differ by less than float32 rounding of ‖x‖². Cost: 2·B·M·k flops per query batch (B queries, M points,
k dims); benchmarks/offline_speed.py measures it at M = 1M. `jax.lax.approx_min_k` would
be faster on TPU but is approximate there, which PRDC's exact KD-tree is not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pad_index(points: jax.Array, chunk_size: int) -> tuple[jax.Array, jax.Array]:
  """points [M, k] -> (chunks [C, chunk, k], valid [C, chunk] bool), zero-padded at the end."""
  m = points.shape[0]
  chunk = min(chunk_size, m)
  n_chunks = -(-m // chunk)
  pad = n_chunks * chunk - m
  padded = jnp.concatenate([points, jnp.zeros((pad,) + points.shape[1:], points.dtype)])
  valid = jnp.arange(n_chunks * chunk) < m
  return padded.reshape(n_chunks, chunk, -1), valid.reshape(n_chunks, chunk)


def nearest(queries: jax.Array, points: jax.Array, chunk_size: int = 65536) -> jax.Array:
  """Index [B] int32 of the point [M, k] nearest (Euclidean) to each query [B, k]."""
  if queries.ndim != 2 or points.ndim != 2 or queries.shape[1] != points.shape[1]:
    raise ValueError(f"queries [B, k] and points [M, k] expected, got {queries.shape} and "
                     f"{points.shape}")
  return nearest_in_chunks(queries, *pad_index(points, chunk_size))


def nearest_in_chunks(queries: jax.Array, chunks: jax.Array, valid: jax.Array) -> jax.Array:
  """`nearest` over an index already split by `pad_index` (chunks [C, chunk, k], valid
  [C, chunk]); split once outside the update so that no step copies the index."""
  chunk = chunks.shape[1]

  def body(best, inputs):
    best_d, best_i = best
    c, x, ok = inputs
    # full float32 products: TF32 (GPU) or bfloat16 passes (TPU) would misorder neighbours
    score = (jnp.sum(x * x, axis=-1)[None, :]
             - 2.0 * jnp.matmul(queries, x.T, precision=jax.lax.Precision.HIGHEST))  # [B, chunk]
    score = jnp.where(ok[None, :], score, jnp.inf)
    j = jnp.argmin(score, axis=-1)                                          # [B]
    d = jnp.sum((queries - x[j]) ** 2, axis=-1)                             # exact, [B]
    better = d < best_d
    return (jnp.where(better, d, best_d), jnp.where(better, c * chunk + j, best_i)), None

  init = (jnp.full(queries.shape[:1], jnp.inf, queries.dtype),
          jnp.zeros(queries.shape[:1], jnp.int32))
  (_, idx), _ = jax.lax.scan(body, init, (jnp.arange(chunks.shape[0], dtype=jnp.int32),
                                          chunks, valid))
  return idx
