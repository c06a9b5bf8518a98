#!/usr/bin/env bash
# Benchmark an LCE flatbuffer on an Android phone (arm64) over adb, from a computer.
#
#   ./android.sh model.tflite [threads] [lce_version]
#
# Needs adb with USB debugging enabled on the phone, and internet on the computer.
set -euo pipefail
MODEL=${1:?usage: android.sh model.tflite [threads] [lce_version]}
THREADS=${2:-4}
VERSION=${3:-v0.16.0}
ASSET=lce_benchmark_model_android_arm64
DEST=/data/local/tmp

if [ ! -f "$ASSET" ]; then
  curl -fL -o "$ASSET" \
    "https://github.com/larq/compute-engine/releases/download/${VERSION}/${ASSET}"
fi
adb push "$ASSET" "$DEST/lce_benchmark_model"
adb shell chmod +x "$DEST/lce_benchmark_model"
adb push "$MODEL" "$DEST/model.tflite"
adb shell "$DEST/lce_benchmark_model" --graph="$DEST/model.tflite" \
  --num_threads="$THREADS" --warmup_runs=10 --num_runs=50
