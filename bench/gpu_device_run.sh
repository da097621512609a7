#!/usr/bin/env bash
# The GPU measurement in one call of a lent machine (see BENCHMARKS.md, "GPU engine"):
#   bash bench/gpu_device_run.sh OUTDIR
# Needs torch (CUDA), torchvision, onnx, opencv and pof's converted landmark trees
# (POF_SHAPE68_NPZ or pof/models/dlib_shape68/shape68.npz, made by tools/convert_shape_predictor.py).
set -u
out=${1:?output folder}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, onnx; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available(), 'cpus', __import__('os').cpu_count())"
photos=/tmp/pof-gpu-photos
if ! timeout 180 python3 -m bench gpu_throughput --photos 256 --batch 64 --photo-dir $photos --out $out/smoke.json >$out/smoke.log 2>&1; then
    tail -n 40 $out/smoke.log; exit 1
fi
for cfg in "64" "256" "256 --half" "512 --half"; do
    set -- $cfg
    name=b$1${2:+_half}
    timeout 120 python3 -m bench gpu_throughput --photos 4096 --batch $1 ${2:-} --photo-dir $photos \
        --out $out/$name.json >$out/$name.log 2>&1 || tail -n 15 $out/$name.log
done
# the user's path, end to end (decoding, the engine, attributes, crops, catalog, export):
# pof build --device cuda on 512 photos, batches of 64 (the default) and 256, attributes off,
# then on (face-api needs onnxruntime)
for cfg in "off 64" "off 256" "on 256"; do
    set -- $cfg
    POF_ATTRIBUTES=$1 POF_GPU_BATCH=$2 timeout 120 python3 -m bench build_speed --pof-only --big 512 \
        --device cuda >$out/build_attributes_$1_batch$2.log 2>&1
    echo "attributes $1, batch $2:"; tail -n 14 $out/build_attributes_$1_batch$2.log
done
python3 - "$out" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(f.read_text())
    print(f.stem, r["device"], "batch", r["batch"], "half", r["half"], "photos/s", r["photos_per_s"],
          "faces/s", r["faces_per_s"], "stages ms/photo", r["stage_ms_per_photo"],
          "desc/s", r["descriptors_per_s"], "mem GiB", r.get("peak_gpu_memory_gib"), "cpu-vs-gpu", r.get("cpu_vs_gpu"))
PY
