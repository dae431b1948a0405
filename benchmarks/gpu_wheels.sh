#!/bin/bash
# Fetches the wheels that benchmarks/gpu.sh installs on the GPU machine (Python 3.12,
# x86-64), into .whl/ of the repository (ignored by git): the packages of ours that the
# machine's image lacks, at the versions of third_party/requirements.lock. About 50 MiB
# (mujoco alone 26 MiB): within the 64 MiB that travel with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
lock=third_party/requirements.lock
for name in brax mujoco mujoco-mjx playground distrax flashbax ml_collections dm-tree jaxopt \
            tfp-nightly decorator trimesh dm-env; do
  spec=$(grep -i -E "^${name//-/[-_]}==" "$lock" || true)
  [ -n "$spec" ] || spec=$name   # not pinned (a need of a pinned one, e.g. decorator)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
du -sh .whl
