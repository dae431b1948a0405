#!/usr/bin/env bash
# Runs every learning test on base seeds 0, 1 and 2 (XLA's CPU code differs between
# processors, so thresholds must hold with a margin on any seed) and prints each run's
# before/after returns. Usage: bash tests/learning_seeds.sh [pytest args, e.g. -k td3]
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
for seed in 0 1 2; do
  OFFPOLICY_LAB_TEST_SEED=$seed OFFPOLICY_LAB_TEST_LOG=$log python -m pytest -q -n 2 \
    -p no:cacheprovider -k "learns or imitates" tests/algorithms "$@" | tail -n 3
done
sort "$log"
rm -f "$log"
