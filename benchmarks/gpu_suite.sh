#!/usr/bin/env bash
# One-command GPU benchmark suite (benchmarks/gpu_suite.py): bash benchmarks/gpu_suite.sh --out DIR
exec python3 "$(dirname "$0")/gpu_suite.py" "$@"
