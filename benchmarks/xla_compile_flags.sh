#!/bin/bash
# XLA CPU compile flags against compile time, on a tiny run of the kind the tests make: a
# SAC expert (16-16 nets, 512 env steps) on 50-step brax/inverted_pendulum episodes, made
# by experiments.collect_demos. Prints each setting's wall time and the sum of XLA's
# compilation times (JAX_LOG_COMPILES). Usage: bash benchmarks/xla_compile_flags.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
for flags in "" "--xla_cpu_use_fusion_emitters=false" "--xla_backend_optimization_level=0" \
             "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"; do
  dir=$(mktemp -d)
  start=$(date +%s.%N)
  XLA_FLAGS="$flags" JAX_LOG_COMPILES=1 "$PY" -m experiments.collect_demos \
    --env=brax/inverted_pendulum --env_arg=episode_length=50 --expert_workdir="$dir/expert" \
    --expert_steps=512 --num_trajectories=1 --out="$dir/demos" --expert_override=num_envs=4 \
    --expert_override=unroll_length=8 "--expert_override=hidden=(16,16)" \
    --expert_override=batch_size=32 --expert_override=learning_starts=64 \
    --expert_override=buffer_size=4096 > "$dir/log" 2>&1 || { echo "[$flags] failed"; continue; }
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  compile=$(grep "XLA compilation" "$dir/log" | awk '{for (i = 1; i <= NF; i++) if ($i == "in") s += $(i + 1)} END {print s}')
  printf '[%s] wall %.1f s, XLA compilation %.1f s\n' "${flags:-XLA defaults}" "$wall" "$compile"
  rm -rf "$dir"
done
