#!/usr/bin/env bash
# GPU check, run on the lent GPU machine (device tool) from the repo root, in ONE call:
#   run(command="bash scripts/gpu_check.sh", timeout_s=540)
# Builds Lepton with CUDA for Hopper, runs the CUDA tests and the GPU benchmarks, and leaves
# logs and JSON under $OUT. That machine has no network: it builds with the packages it has
# (python3 3.12 with numpy, pybind11, scikit-build-core, cmake, ninja, pytest, hypothesis, torch).
# A rerun after a fix can narrow the tests and skip the benchmarks:
#   run(command="TESTS='tests/test_cuda_conv.py -k bf16' BENCH=0 bash scripts/gpu_check.sh")
set -uo pipefail
OUT=${OUT:-$(mktemp -d)}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{ nvidia-smi; nvcc --version; python3 --version; } 2>&1 | tee "$OUT/env.txt"
t0=$SECONDS
LEPTON_CUDA=ON python3 -m pip install --no-build-isolation --no-deps -q \
  -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90a -Cbuild-dir="${TMPDIR:-/tmp}/lepton-build" . 2>&1 | tail -n 40 | tee "$OUT/build.log"
echo "build seconds: $((SECONDS - t0))" | tee -a "$OUT/build.log"
python3 -c "import lepton; print(lepton.info())" 2>&1 | tee "$OUT/info.txt"
# Each stage gets at most its own limit and never more than what is left of BUDGET seconds, so the
# logs of every stage that ran come back within the device call's limit.
BUDGET=${BUDGET:-560}
limit() { local left=$((BUDGET - SECONDS)); echo $(( left < $1 ? (left > 5 ? left : 5) : $1 )); }
# The core kernels first, in their own run: a broken family later in the alphabet (attention,
# conv) must not use up --maxfail before GEMM, optimizers, softmax and norms are reported.
CORE="tests/test_cuda.py tests/test_cuda_gemm.py tests/test_cuda_optim.py tests/test_cuda_softmax.py
      tests/test_cuda_norm.py tests/test_cuda_streams.py tests/test_matmul.py"
if [ -z "${TESTS:-}" ]; then
  timeout "$(limit 90)" python3 -m pytest -m cuda -q --maxfail=30 --timeout=60 $CORE 2>&1 | tail -n 40 | tee "$OUT/pytest-cuda-core.log"
  REST=$(ls tests/test_*.py | grep -v -F "$(echo $CORE | tr ' ' '\n')")
  timeout "$(limit 150)" python3 -m pytest -m cuda -q --maxfail=30 --timeout=60 $REST 2>&1 | tail -n 60 | tee "$OUT/pytest-cuda.log"
else
  timeout "$(limit 200)" python3 -m pytest -m cuda -q --maxfail=30 --timeout=120 $TESTS 2>&1 | tail -n 60 | tee "$OUT/pytest-cuda.log"
fi
if [ "${BENCH:-1}" = 0 ]; then echo "total seconds: $SECONDS" | tee -a "$OUT/build.log"; exit 0; fi
(cd bench && timeout "$(limit 120)" python3 cuda_kernels.py --json "$OUT/bench-cuda-kernels.json") 2>&1 | tee "$OUT/bench-cuda-kernels.log"
(cd bench && timeout "$(limit 60)" python3 cuda_attention.py --json "$OUT/bench-cuda-attention.json") 2>&1 | tee "$OUT/bench-cuda-attention.log"
(cd bench && timeout "$(limit 45)" python3 conv.py --device cuda --json "$OUT/bench-conv-cuda.json") 2>&1 | tee "$OUT/bench-conv-cuda.log"
(cd bench && timeout "$(limit 90)" python3 gpt2_step.py --device cuda --json "$OUT/bench-gpt2-step.json") 2>&1 | tee "$OUT/bench-gpt2-step.log"
(cd bench && timeout "$(limit 40)" python3 gpt2_step.py --device cuda --config char-gpt --no-amp --steps 30 \
  --json "$OUT/bench-char-gpt-step.json") 2>&1 | tee "$OUT/bench-char-gpt-step.log"
(cd bench && timeout "$(limit 40)" python3 elementwise.py --device cuda --json "$OUT/bench-elementwise-cuda.json") 2>&1 | tee "$OUT/bench-cuda.log"
echo "total seconds: $SECONDS" | tee -a "$OUT/build.log"
