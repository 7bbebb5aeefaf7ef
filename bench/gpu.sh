#!/usr/bin/env bash
# Every GPU measurement docs/benchmarks.md asks for, in one command on a machine with CUDA GPUs:
#
#   bench/gpu.sh [--check] [RESULTS_DIR] [ROLLOUTS_DIR]
#
# - target extraction (bench/targets.py): the "realistic" random Llava (149 M) in bf16, and a random
#   Llava of Molmo-7B-D's sizes (6.8 B, one 336 px crop per frame) in bf16, int8 and int4
#   (bitsandbytes; skipped where it is not installed): frames/s, MFU, peak GPU memory;
# - the LAM loader alone (bench/loader.py) on a rollout file repeated to 240 trajectories (larger
#   than h5py's caches): samples/s onto the GPU with the rows resident there and streamed, for the
#   pixel, twin and vector heads;
# - LAM training (bench/lam.py) at config.yaml's sizes (128 px, batch 512): samples/s of the bare
#   step and of the `lam train` loop, for the pixel and the vector head, with the GPU's
#   utilisation sampled by nvidia-smi every 0.5 s meanwhile (lam-*-utilisation.csv);
# - one job per GPU (src/promptlam/devices.py): as many `promptlam targets compute` jobs as there
#   are GPUs, at once, against one alone; skipped on a machine with one GPU.
# Each result is a JSON file (and a log) in RESULTS_DIR (default bench-results/); a step that fails
# or runs past its limit (PROMPTLAM_BENCH_STEP_SECONDS, default 300) is reported and the rest go on.
# ROLLOUTS_DIR holds reach-v3.h5, a train rollout file at config.yaml's resolution (collected here
# when not given: that needs MetaWorld and EGL; `promptlam rollouts collect --config config.yaml
# --task reach-v3 --split train --trajectories 4 --out DIR/reach-v3.h5` makes one on any machine).
# --check runs the same steps at toy sizes on any machine, GPU or not (the tiny test model, the
# smoke profile's LAM, two made-up device ids): a test of this script, not a measurement.
# It runs `python3` (the environment of `make setup VARIANT=cuda`, activated) or $PYTHON.
# The numbers go to docs/benchmarks.md by hand, with the GPU they were measured on.
set -uo pipefail
check=false
if [ "${1:-}" = --check ]; then
  check=true
  shift
fi
results=$(realpath -m "${1:-bench-results}")
rollouts=${2:+$(realpath -m "$2")}
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
limit=${PROMPTLAM_BENCH_STEP_SECONDS:-300}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$results"
failed=()

step() {  # step NAME COMMAND...: run with a time limit, output to RESULTS_DIR/NAME.log
  local name=$1
  shift
  echo "== $name ($(date +%T))"
  local began=$SECONDS
  if timeout "$limit" "$@" >"$results/$name.log" 2>&1; then
    echo "   done in $((SECONDS - began)) s"
  else
    echo "   FAILED (exit $?, after $((SECONDS - began)) s): last lines of $results/$name.log"
    tail -n 5 "$results/$name.log" | sed 's/^/   | /'
    failed+=("$name")
  fi
}

if $check; then
  small=tiny large=tiny gpus=2
  lam=(--config config.yaml --config profiles/smoke/smoke.yaml --set '{"tasks": ["reach-v3"]}' --steps 5)
  loader=(--device cpu --trajectories 40 --steps 3 --batch-size 64)
  collect_config=(--config config.yaml --config profiles/smoke/smoke.yaml)
else
  "$python" -c "import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name())" ||
    { echo "bench/gpu.sh: no CUDA GPU visible to $python (--check tests this script without one)"; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$results/gpus.txt"
  small=realistic large=7b gpus=$(nvidia-smi -L | grep -c '^GPU ')
  lam=(--config config.yaml --set '{"tasks": ["reach-v3"]}' --steps 100)
  loader=(--device cuda --trajectories 240)
  collect_config=(--config config.yaml)
fi

if [ -z "$rollouts" ]; then
  rollouts=$results/rollouts
  step collect "$python" -m promptlam rollouts collect "${collect_config[@]}" --task reach-v3 --split train \
    --trajectories 4 --out "$rollouts/reach-v3.h5"
fi
[ -f "$rollouts/reach-v3.h5" ] || { echo "bench/gpu.sh: $rollouts/reach-v3.h5: no rollout file"; exit 1; }

frames=(--rollouts "$rollouts/reach-v3.h5" --frames 512)
step targets-$small-bf16 "$python" bench/targets.py --model $small --model-folder "$results/model-$small" \
  --precision bf16 --batch-size 64 --workers 4 "${frames[@]}" --out "$results/targets-$small-bf16.json"
# Built once (in bf16 on the GPU), then loaded by each precision through the loader real models use.
for precision in bf16 int8 int4; do
  if [ $precision != bf16 ] && ! "$python" -c "import bitsandbytes" 2>/dev/null; then
    echo "== targets-$large-$precision: skipped (bitsandbytes is not installed)"
    continue
  fi
  step targets-$large-$precision "$python" bench/targets.py --model $large --model-folder "$results/model-$large" \
    --precision $precision --batch-size 16 --workers 4 "${frames[@]}" --out "$results/targets-$large-$precision.json"
done

step loader "$python" bench/loader.py "${loader[@]}" --data "$rollouts" --out "$results/loader.json"

utilisation() {  # utilisation NAME: sample the GPU until `kill`ed (nothing without nvidia-smi)
  command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 500 >"$results/$1-utilisation.csv" &
  sampler=$!
}
lam+=(--data "$rollouts" --factors)
for case in pixels:lapo/pixels/absolute state:target/state/delta; do
  sampler=
  utilisation "lam-${case%%:*}"
  step "lam-${case%%:*}-w0" "$python" bench/lam.py "${lam[@]}" --run "${case#*:}" --out "$results/lam-${case%%:*}-w0.json"
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
done

if [ "$gpus" -ge 2 ]; then
  # The small model as a config target, computed by the CLI as a workflow job would: each job claims
  # a device of the pool first and says which in its log.
  image_size=$("$python" -c "import json, sys; print(json.load(open(sys.argv[1]))['image_size'])" \
    "$results/targets-$small-bf16.json")
  config="{\"targets\": {\"bench\": {\"kind\": \"vlm\", \"family\": \"llava\", \"model\": \"$results/model-$small\",
    \"prompt\": \"Focus on the robot arm and the {object}.\", \"precision\": \"bf16\", \"image_size\": $image_size}}}"
  mkdir -p "$results/pool"
  for jobs in 1 "$gpus"; do
    echo "== pool-$jobs-jobs ($(date +%T))"
    began=$EPOCHREALTIME
    pids=()
    for i in $(seq "$jobs"); do
      PROMPTLAM_GPUS=$(seq -s, 0 $((gpus - 1))) timeout "$limit" "$python" -m promptlam targets compute \
        --config config.yaml --config-json "$config" --target bench --task reach-v3 \
        --rollouts "$rollouts/reach-v3.h5" --out "$results/pool/$jobs-$i.h5" >"$results/pool/$jobs-$i.log" 2>&1 &
      pids+=($!)
    done
    ok=true
    for pid in "${pids[@]}"; do wait "$pid" || ok=false; done
    if ! $ok; then
      echo "   FAILED: see $results/pool/$jobs-*.log"
      failed+=("pool-$jobs-jobs")
      continue
    fi
    devices=$(grep -ho 'using GPU [0-9]*' "$results"/pool/"$jobs"-*.log | sort | uniq -c | xargs)
    echo "{\"gpus\": $gpus, \"jobs\": $jobs, \"wall_s\": $(awk "BEGIN {print $EPOCHREALTIME - $began}")," \
      "\"devices\": \"$devices\"}" | tee "$results/pool-$jobs-jobs.json"
  done
else
  echo "== one job per GPU: skipped (one GPU here; the pool shares out two or more)"
fi

echo "results in $results: $(cd "$results" && ls -- *.json 2>/dev/null | xargs)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
