#!/usr/bin/env bash
# The smoke suite's baseline (results/smoke): scripts/update-baseline.sh smoke.
exec bash "$(dirname "$0")/update-baseline.sh" smoke
