#!/usr/bin/env bash
# One pass on a GPU machine (fits 8 minutes): the tests marked `gpu`, then the batched engine against
# round-robin on the 7-8B twins in bf16 at 1/4/16/32/48 sessions (`bench engine`), one process per model
# (a model that fails or runs long loses only its rows).
#   benchmarks/gpu_run.sh OUT_DIR [FRAMES]
# Writes OUT_DIR/gpu.txt (machine, versions, test log) and engine_<n>.json/.png per model.
# GPU_RUN_MODELS overrides the model list; GPU_RUN_TESTS=0 skips the tests; GPU_RUN_STREAMING=1 also
# runs the older per-step streaming benchmark (gpu_streaming.json: naive re-encoding, memory bound).
# Needs the package importable (pip install -e . or PYTHONPATH=src) and CUDA.
set -u
out=${1:?usage: benchmarks/gpu_run.sh OUT_DIR [FRAMES]}
frames=${2:-4}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
py=${PYTHON:-python3}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $py -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
} >"$out/gpu.txt" 2>&1
if [ "${GPU_RUN_TESTS:-1}" = 1 ]; then
  timeout "${GPU_RUN_TEST_TIMEOUT:-200}" $py -m pytest -q -p no:cacheprovider -m gpu -rA -s tests/test_placement.py \
    tests/test_real_twins.py 2>&1 | tee -a "$out/gpu.txt" | tail -25
fi
models=${GPU_RUN_MODELS:-real:Qwen/Qwen2.5-VL-7B-Instruct real:Qwen/Qwen3-VL-8B-Instruct real:OpenGVLab/InternVL3_5-8B-HF}
n=0
for model in $models; do
  n=$((n + 1))
  timeout "${GPU_RUN_ENGINE_TIMEOUT:-90}" $py -m evostreaming.cli bench engine --model "$model" --dtype bfloat16 \
    --sessions 1,4,16,32,48 --frames "$frames" --window 16 --modes round-robin,batched \
    --json "$out/engine_$n.json" 2>&1 | tail -3
done
[ "${GPU_RUN_STREAMING:-0}" = 1 ] || exit 0
frames=60
n=0
parts=$(mktemp -d)  # per-model JSON and PNG; only the JSON is kept beside the merged files
for model in $models; do
  n=$((n + 1))
  timeout "${GPU_RUN_MODEL_TIMEOUT:-150}" $py benchmarks/gpu_streaming.py --models "$model" --frames "$frames" \
    --naive-frames $((frames < 30 ? frames : 30)) --concurrency 1 4 16 --concurrent-frames $((frames < 20 ? frames : 20)) \
    --json "$parts/gpu_streaming_$n.json" 2>&1 | tail -4
  cp "$parts/gpu_streaming_$n.json" "$out/" 2>/dev/null
done
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from gpu_streaming import plot
out = Path(sys.argv[1])
parts = [json.loads(p.read_text()) for p in sorted(out.glob("gpu_streaming_*.json"))]
rows = [r for p in parts for r in p["rows"]]
if rows:
    (out / "gpu_streaming.json").write_text(json.dumps({"torch": parts[0]["torch"], "rows": rows}, indent=1))
    plot(rows, out / "gpu_streaming.png")
print(len(rows), "rows")
PY
