#!/usr/bin/env bash
# Benchmark an LCE flatbuffer on a Raspberry Pi with LCE's prebuilt benchmark binary.
#
# Run ON THE PI (64-bit Raspberry Pi OS: `uname -m` must print aarch64; the 32-bit OS
# gets only LCE's slower 32-bit NEON kernels and needs lce_benchmark_model_aarch32).
#
#   ./raspberry_pi.sh model.tflite [threads] [lce_version]
#
# Needs internet on the Pi (or copy the binary over with scp).
set -euo pipefail
MODEL=${1:?usage: raspberry_pi.sh model.tflite [threads] [lce_version]}
THREADS=${2:-4}
VERSION=${3:-v0.16.0}

case "$(uname -m)" in
  aarch64) ASSET=lce_benchmark_model_aarch64 ;;
  armv7l) ASSET=lce_benchmark_model_aarch32
          echo "warning: 32-bit OS; install the 64-bit OS for the fast kernels" >&2 ;;
  *) echo "error: run this on the Raspberry Pi (uname -m is $(uname -m))" >&2; exit 2 ;;
esac

if [ ! -x "./$ASSET" ]; then
  curl -fL -o "$ASSET" \
    "https://github.com/larq/compute-engine/releases/download/${VERSION}/${ASSET}"
  chmod +x "$ASSET"
fi

# Batch-1 latency: 10 warm-up runs, then 50 timed runs (mean and std in microseconds).
"./$ASSET" --graph="$MODEL" --num_threads="$THREADS" --warmup_runs=10 --num_runs=50
