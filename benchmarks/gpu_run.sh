#!/usr/bin/env bash
# The GPU measurements of issues 16 and 11 in one run of at most BUDGET seconds (default 570), for a GPU lent
# for a few minutes. Each part gets a time limit and leaves what it measured even when cut short; a failing
# part does not stop the next one. Everything lands in OUT_DIR (default benchmarks/results):
#   gpu_run.log                    all output, with each part's exit status and seconds
#   cuda_check.json                fit / impute / save / load / train on, on CUDA, checked against the CPU
#   throughput_cuda.{json,md}      the paper preset's training rate, batch 32-1024, 0% / 10% missing, compiled
#   presets_cuda.{json,md}         restoration, "cpu" vs "gpu" preset trained on the GPU, with ridge and mean
#   paper_learning_cuda.{json,md}  the paper preset at full size on NKI, with and without the scaffold
#   paper_long_cuda.{json,md}      the paper preset at full size on NKI, 100 epochs, lr 5e-4 and 1e-4, seeds 1, 2
#   throughput_profile_cuda.{json,txt}  where a training step's device time goes (paper preset, batch 512)
#   paper_recipe_cuda.{json,md}    the paper preset's recipe of session 10 (gene embeddings at sd 1, a 6-epoch
#                                  scaffold, lr 5e-4) at full size on NKI and ovarian, seeds 0 and 1
#   paper_recipe_small_genes_cuda.{json,md}  the same with the former gene embeddings (sd 0.02), NKI seed 0
# PARTS (environment) picks and orders the parts: check throughput presets paper (default, the first GPU run,
# session 9), recipe profile (the next GPU run, PARTS="recipe profile"; then long).
# Usage: [PARTS="..."] bash benchmarks/gpu_run.sh [OUT_DIR] [BUDGET]
# Where the GPU machine's Python lacks the package's dependencies (the device tool's image has torch, numpy,
# pandas, scikit-learn, h5py, numba but not anndata or scanpy), bring them as wheels for its Python (3.12)
# in an ignored .whl/ (anndata array-api-compat donfig google-crc32c legacy-api-wrap natsort numcodecs
# scverse-misc zarr scanpy session-info2 umap-learn pynndescent pooch platformdirs; `pip download --no-deps
# --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 ...`) and run there:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#     PYTHONPATH=/tmp/site:$PWD/src bash benchmarks/gpu_run.sh "$OUT" 560
set -u
out=${1:-benchmarks/results}
budget=${2:-570}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
log="$out/gpu_run.log"
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}

part() {  # part CAP command...: runs with at most CAP seconds, less if the budget runs out first
  local cap=$1 left=$((budget - SECONDS - 10)) t=$SECONDS rc
  shift
  ((left < cap)) && cap=$left
  if ((cap < 20)); then echo "== skipped (budget spent): $*" | tee -a "$log"; return; fi
  echo "== $* (at most ${cap} s, at ${SECONDS} s)" | tee -a "$log"
  timeout -k 10 "$cap" "$@" >>"$log" 2>&1
  rc=$?
  echo "== exit $rc after $((SECONDS - t)) s" | tee -a "$log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } >>"$log" 2>&1
for p in ${PARTS:-check throughput presets paper}; do
  case $p in
    check) part 100 "$py" "$here/cuda_check.py" --out "$out" ;;
    throughput)
      part 200 "$py" "$here/throughput.py" --device cuda --preset paper --quick
      cp "$here"/results/throughput_cuda.* "$out"/ 2>/dev/null ;;
    presets)
      part 230 "$py" "$here/imputation.py" --cohorts tcga_skcm nki --seeds 0 --parts restoration \
        --restore-methods mean ridge gexbert gexbert:gpu --out "$out/presets_cuda" ;;
    paper)
      part 200 "$py" "$here/paper_learning.py" --device cuda --cohorts nki --lrs 5e-4 --scaffolds 10 0 --epochs 5 55 \
        --out paper_learning_cuda
      cp "$here"/results/paper_learning_cuda.* "$out"/ 2>/dev/null ;;
    long)  # about 100 s a run on an H200; the JSON is rewritten after every run
      part 480 "$py" "$here/paper_learning.py" --device cuda --cohorts nki --lrs 5e-4 1e-4 --seeds 1 2 \
        --scaffolds 0 --epochs 5 95 --out paper_long_cuda
      cp "$here"/results/paper_long_cuda.* "$out"/ 2>/dev/null ;;
    recipe)  # about 80 s a run on an H200 (5 + 45 epochs of 25 steps); the JSON is rewritten after every run
      part 320 "$py" "$here/paper_learning.py" --device cuda --cohorts nki ovarian --seeds 0 1 --lrs 5e-4 \
        --scaffolds 6 --epochs 5 45 --out paper_recipe_cuda
      part 100 "$py" "$here/paper_learning.py" --device cuda --cohorts nki --seeds 0 --lrs 5e-4 --scaffolds 6 \
        --epochs 5 45 --set gene_init_sd=0.02 --out paper_recipe_small_genes_cuda
      cp "$here"/results/paper_recipe_*cuda.* "$out"/ 2>/dev/null ;;
    profile)
      part 90 "$py" "$here/throughput.py" --device cuda --preset paper --profile
      cp "$here"/results/throughput_profile_cuda.* "$out"/ 2>/dev/null ;;
    *) echo "== unknown part $p" | tee -a "$log" ;;
  esac
done
echo "== done at ${SECONDS} s" | tee -a "$log"
