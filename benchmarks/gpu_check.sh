#!/usr/bin/env bash
# One-shot check of lit-daa on a lent NVIDIA machine (H100/H200), at most ~9 minutes of wall time:
#   0. install the wheels that machine lacks (datasets, jsonargparse + docstring-parser + typeshed-client, trl, dill,
#      multiprocess, peft, bitsandbytes) from .whl/ without any network, print nvidia-smi and the versions;
#   1. a quickstart fit on the GPU (bf16-mixed), checking that it finishes and prints its held-out accuracy;
#   2. QLoRA: a DPO fit of a Pythia-1B-shaped random GPT-NeoX (NF4 base, bf16 compute, fp32 LoRA), the same under
#      FSDP2 on all GPUs (FSDP-QLoRA: its per-step losses against the plain QLoRA run's, and that none is 0 or NaN),
#      and a bf16 full fine-tune of the same model: steps/s, tokens/s, peak memory, and the MFU of that Pythia-1B DPO
#      step (goal >= 35%: 6 N policy + 2 N reference-forward FLOPs per token; benchmarks/fit_benchmark.py);
#   3. FSDP2: a Pythia-410M-shaped fit killed with SIGKILL half-way, resumed from its sharded checkpoint and
#      exported to Hugging Face format (loaded back): tokens/s, peak memory, MFU;
#   4. the step benchmark, lit-daa against TRL's DPOTrainer, on a Pythia-160M-shaped random GPT-NeoX with sequences
#      of up to 256 tokens;
#   5. the TL;DR-shaped step benchmark (prompts 150-500 tokens) on the 160M shape: every lit-daa layout (Packed
#      with FlexAttention) and the cached reference against TRL;
#   6. loading a Pythia-6.9B-shaped random GPT-NeoX (hidden 4096, 32 layers, 32 heads, vocabulary 50432; bf16 on
#      disk, built on the GPU) with `lit-daa fit --trainer.strategy fsdp2` on all GPUs, two steps: each rank's peak
#      host RSS (ru_maxrss) and peak device memory (max_memory_allocated) once loaded and over the fit;
#   7. HSDP (--trainer.strategy.replicas 2) on all GPUs, Pythia-410M-shaped (needs an even number of GPUs >= 2;
#      skipped, saying so, on fewer).
#   8. on a Pythia-1B shape with a 50k vocabulary, in random order: the chunked LM head against the logits head,
#      on SharedPrompt and on Packed rows with segment attention, against TRL (pairs/s, working memory).
# Results are appended to $OUT/RESULTS-gpu.md. A failing step does not stop the others; a step that would not
# finish within the ~9-minute budget is skipped and says so. Order: 0, 2, 6, 7, 1, 3, 5, 4, 8 (what this round has
# never measured on a GPU first). Full logs go to $OUT/logs/.
# Wheels: pip download --no-deps -d .whl datasets jsonargparse docstring-parser typeshed-client trl dill \
#   multiprocess peft bitsandbytes   (and huggingface_hub into .whl/optional/); carry .whl (under 64 MiB).
#
# On the device:    bash benchmarks/gpu_check.sh           ($OUT is set by the device tool; .whl/ must be carried)
# Dry run on CPU:   GPU_CHECK_CPU=1 OUT=/tmp/gpu-check bash benchmarks/gpu_check.sh
#   (same steps with tiny sizes on the CPU, using $PYTHON or python3 and its packages; no wheel install unless
#   GPU_CHECK_INSTALL=1, which installs $WHEELS (default .whl) into $GPU_CHECK_SITE (default /tmp/site) as on the GPU)
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
CPU_MODE=${GPU_CHECK_CPU:-0}
if [ "$CPU_MODE" = 1 ]; then INSTALL=${GPU_CHECK_INSTALL:-0}; else INSTALL=${GPU_CHECK_INSTALL:-1}; fi
WHEELS=${WHEELS:-.whl}
SITE=${GPU_CHECK_SITE:-/tmp/site}
PY=${PYTHON:-python3}
OUT=${OUT:-$REPO/runs/gpu_check}
mkdir -p "$OUT/logs"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1 PYTHONWARNINGS=ignore
export LIT_DAA_CACHE=${LIT_DAA_CACHE:-/tmp/lit_daa_cache}
STATUS=()
T_START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-540}  # seconds for the whole script

elapsed() { echo "$(($(date +%s) - $1)) s"; }

step0_setup() {
    echo "== step 0: setup"
    [ "$CPU_MODE" = 1 ] && echo "GPU_CHECK_CPU=1: dry run on the CPU with $PY ($($PY -c 'import sys; print(sys.prefix)'))"
    if [ "$INSTALL" = 1 ]; then
        ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "no wheels in $WHEELS/ (carry .whl)"; return 1; }
        if ! $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "$WHEELS"/*.whl >"$OUT/logs/pip.log" 2>&1; then
            echo "pip install failed (see logs/pip.log); unpacking the wheels with zipfile instead"
            mkdir -p "$SITE"
            for w in "$WHEELS"/*.whl; do $PY -m zipfile -e "$w" "$SITE" || return 1; done
        fi
        # datasets 5.2 imports names that huggingface_hub added in 1.31; transformers 5.17 allows 1.5 to 1.x, so an
        # older hub gets the shipped 1.33 (still < 2.0 for transformers) in front of it.
        if ! $PY -c "import sys, huggingface_hub as h; from packaging.version import Version as V
sys.exit(V(h.__version__) < V('1.31'))" 2>/dev/null; then
            echo "huggingface_hub $($PY -c 'import huggingface_hub as h; print(h.__version__)' 2>&1) < 1.31:" \
                "adding $(ls "$WHEELS"/optional/huggingface_hub-*.whl 2>/dev/null)"
            $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
                "$WHEELS"/optional/huggingface_hub-*.whl >>"$OUT/logs/pip.log" 2>&1 ||
                $PY -m zipfile -e "$WHEELS"/optional/huggingface_hub-*.whl "$SITE"
        fi
        export PYTHONPATH=$SITE:$REPO
        echo "installed into $SITE: $(cd "$WHEELS" && ls -- *.whl | tr '\n' ' ')"
    else
        echo "no wheel install"
        export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
    fi
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "(no nvidia-smi)"; fi
    $PY - <<'EOF'
import importlib, platform, sys
print("python", platform.python_version(), sys.executable)
for name in ("torch", "lightning", "transformers", "trl", "peft", "bitsandbytes", "datasets", "jsonargparse",
             "docstring_parser",
             "typeshed_client", "dill", "multiprocess", "accelerate", "tokenizers", "torchmetrics",
             "pyarrow", "huggingface_hub", "fsspec", "pandas", "numpy"):
    try:
        module = importlib.import_module(name)
        print(f"  {name} {getattr(module, '__version__', '?')}")
    except Exception as err:  # noqa: BLE001 - report every missing piece, then go on
        print(f"  {name}: NOT IMPORTABLE ({type(err).__name__}: {err})")
import torch
print("cuda available:", torch.cuda.is_available(), "| torch cuda:", torch.version.cuda,
      "| device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
import lit_daa.cli, lit_daa.module  # noqa: E401,F401 - the project imports with these packages
from trl import DPOConfig, DPOTrainer  # noqa: F401
print("lit_daa and trl.DPOTrainer import fine")
EOF
}

step1_quickstart() {
    echo "== step 1: quickstart fit"
    local t0 log=$OUT/logs/quickstart.log
    t0=$(date +%s)
    local args=(fit --config configs/quickstart.yaml --trainer.default_root_dir="$OUT/qs"
        --trainer.logger.init_args.save_dir="$OUT/qs" --trainer.enable_progress_bar=false)
    if [ "$CPU_MODE" = 1 ]; then
        args+=(--trainer.accelerator=cpu --trainer.max_steps=40 --trainer.val_check_interval=20)
    else
        args+=(--trainer.accelerator=gpu --trainer.precision=bf16-mixed)
    fi
    echo "python -m lit_daa.cli ${args[*]}"
    timeout 150 $PY -m lit_daa.cli "${args[@]}" >"$log" 2>&1
    local code=$?
    grep -A7 "lit-daa: fit finished" "$log"
    echo "quickstart: exit $code after $(elapsed "$t0")"
    if [ $code -ne 0 ]; then tail -n 30 "$log"; return 1; fi
    grep -q "held-out implicit-reward accuracy" "$log" || { echo "no accuracy printed"; return 1; }
    # the run's checkpoints and exported policy are not needed back
    rm -rf "$OUT/qs/checkpoints" "$OUT/qs/hf_policy"
}

run_script() {  # run_script SCRIPT LABEL TIMEOUT ARGS...: one benchmark script, its output to logs/LABEL.out
    local script=$1 label=$2 limit=$3 t0
    shift 3
    t0=$(date +%s)
    echo "python benchmarks/$script $*"
    timeout "$limit" $PY "benchmarks/$script" "$@" --out "$OUT/RESULTS-gpu.md" >"$OUT/logs/$label.out" 2>&1
    local code=$?
    # progress lines and the table; the residual-differences notes are in the .out log and RESULTS.md
    sed -n '/^Residual differences/q;p' "$OUT/logs/$label.out" | grep -v "^$" | grep -v "^Writing\|^Loading"
    echo "$label: exit $code after $(elapsed "$t0")"
    return $code
}

bench() {  # bench LABEL TIMEOUT ARGS...: the step benchmark against TRL
    local label=$1 limit=$2
    shift 2
    run_script step_benchmark.py "bench-$label" "$limit" "$@" --log-dir "$OUT/logs/bench-$label"
}

fit_bench() {  # fit_bench LABEL TIMEOUT ARGS...: whole lit-daa fit runs
    local label=$1 limit=$2
    shift 2
    run_script fit_benchmark.py "fit-$label" "$limit" "$@" --workdir "${FIT_WORKDIR:-/tmp/fit_benchmark}"
}

step4_bench_160m() {
    echo "== step 4: step benchmark, Pythia-160M-shaped random GPT-NeoX, sequences up to 256 tokens"
    if [ "$CPU_MODE" = 1 ]; then
        bench small-long 300 --device cpu --model random-neox:64x2x2 --response-words 20,40 --max-length 64 \
            --batch-size 2 --steps 4 --warmup 1 --repeats 2
    else
        bench 160m 120 --device cuda --model random-neox:768x12x12 --response-words 100,240 --max-length 256 \
            --batch-size 16 --steps 40 --warmup 10
    fi
}

step5_bench_tldr() {
    echo "== step 5: TL;DR-shaped step benchmark, every layout and the cached reference against TRL"
    local all=lit-daa,lit-daa-shared,lit-daa-packed,lit-daa-packed-segments,lit-daa-shared-cached
    all+=,lit-daa-packed-cached,trl
    if [ "$CPU_MODE" = 1 ]; then
        bench tldr-tiny 200 --device cpu --data tldr --model random-neox:64x2x4 --prompt-range 20,60 \
            --response-words 3,10 --max-length 128 --max-prompt-length 64 --batch-size 4 --steps 6 --warmup 2 \
            --bucket-batches 4 --token-budget 256 --frameworks "$all"
    else
        bench tldr-160m 150 --device cuda --data tldr --model random-neox:768x12x12 --prompt-range 150,500 \
            --response-words 10,60 --max-length 600 --max-prompt-length 520 --batch-size 32 --steps 24 \
            --warmup 6 --bucket-batches 8 --token-budget 4096 --frameworks "$all"
    fi
}

step8_heads_1b() {
    echo "== step 8: Pythia-1B-shaped (vocabulary 50304), random order: the chunked head against the logits head on"
    echo "   SharedPrompt and on Packed rows with segment attention (FlexAttention), against TRL"
    local layouts=lit-daa-shared,lit-daa-packed-segments,trl
    if [ "$CPU_MODE" = 1 ]; then
        bench heads-tiny 200 --device cpu --data tldr --model random-neox:64x2x4 --vocab 4096 --prompt-range 20,60 \
            --response-words 3,10 --max-length 128 --max-prompt-length 64 --batch-size 4 --steps 4 --warmup 1 \
            --heads chunked,logits --frameworks "$layouts"
    else
        bench heads-1b 200 --device cuda --data tldr --model random-neox:2048x16x8 --vocab 50304 \
            --prompt-range 150,500 --response-words 30,90 --max-length 640 --max-prompt-length 520 --batch-size 8 \
            --steps 12 --warmup 4 --heads chunked,logits --frameworks "$layouts"
    fi
}

gpus() { if [ "$CPU_MODE" = 1 ]; then echo 2; else nvidia-smi -L | wc -l; fi; }  # CPU: 2 gloo processes

step2_qlora_1b() {
    echo "== step 2: QLoRA, FSDP-QLoRA and a bf16 full fine-tune (MFU) on all GPUs, Pythia-1B-shaped"
    if [ "$CPU_MODE" = 1 ]; then  # one process (FSDP2 over 1 rank): 2-process FSDP-QLoRA is tests/test_fsdp_qlora.py
        fit_bench qlora 600 --device cpu --devices 1 --shape 64x2x4 --vocab 512 \
            --runs qlora,fsdp-qlora,bf16-full --steps 4 --warmup 1 --batch-size 2 --prompt-words 40
    else
        fit_bench qlora 230 --device cuda --devices "$(gpus)" --shape 2048x16x8 --vocab 50304 \
            --runs qlora,fsdp-qlora,bf16-full --steps 14 --warmup 4 --batch-size 8 --prompt-words 200 --timeout 75
    fi
}

step6_load_6_9b() {
    echo "== step 6: loading a Pythia-6.9B-shaped random GPT-NeoX under FSDP2 on $(gpus) device(s): memory per rank"
    if [ "$CPU_MODE" = 1 ]; then
        fit_bench load 300 --device cpu --devices "$(gpus)" --shape 64x2x4 --vocab 512 --runs fsdp2-load --steps 2 \
            --warmup 0 --batch-size 1 --prompt-words 20
    else
        # bf16 on disk (13.8 GB), built once into the work folder; 2 steps of 1 pair per device
        fit_bench load 210 --device cuda --devices "$(gpus)" --shape 4096x32x32 --vocab 50432 --runs fsdp2-load \
            --steps 2 --warmup 0 --batch-size 1 --prompt-words 100 --timeout 150
        local code=$?
        rm -rf "${FIT_WORKDIR:-/tmp/fit_benchmark}"/neox-4096x32x32-v50432  # 13.8 GB of disk back for later steps
        return $code
    fi
}

step7_hsdp() {
    local n
    n=$(gpus)
    echo "== step 7: HSDP (2 replica groups) on $n device(s), Pythia-410M-shaped"
    if [ "$n" -lt 2 ] || [ $((n % 2)) -ne 0 ]; then
        echo "HSDP needs an even number of devices >= 2 (2 replica groups); this machine has $n: skipped"
        echo "- HSDP (step 7) not run: $n device(s), it needs an even number >= 2" >>"$OUT/RESULTS-gpu.md"
        return 0
    fi
    if [ "$CPU_MODE" = 1 ]; then
        fit_bench hsdp 300 --device cpu --devices "$n" --shape 64x2x4 --vocab 512 --runs hsdp --steps 3 --warmup 1 \
            --batch-size 2 --prompt-words 20
    else
        fit_bench hsdp 120 --device cuda --devices "$n" --shape 1024x24x16 --vocab 50304 --runs hsdp --steps 12 \
            --warmup 4 --batch-size 8 --prompt-words 200 --timeout 100
    fi
}

step3_fsdp2_410m() {
    echo "== step 3: FSDP2 fit, Pythia-410M-shaped random GPT-NeoX: SIGKILL, resume, HF export"
    if [ "$CPU_MODE" = 1 ]; then
        fit_bench fsdp2 300 --device cpu --devices 2 --shape 64x2x4 --vocab 512 --runs fsdp2 --resume --steps 8 \
            --warmup 2 --batch-size 2 --prompt-words 40
    else
        fit_bench fsdp2 200 --device cuda --devices "$(nvidia-smi -L | wc -l)" --shape 1024x24x16 --vocab 50304 \
            --runs fsdp2 --resume --steps 24 --warmup 4 --batch-size 8 --prompt-words 200 --timeout 90
    fi
}

run_step() {  # run_step NUMBER FUNCTION SECONDS_IT_MAY_TAKE
    local left=$((BUDGET - $(date +%s) + T_START))
    if [ "$left" -lt "$3" ]; then
        echo "== step $1 skipped: ${left} s left of the ${BUDGET} s budget, it may take $3 s"
        STATUS+=("step $1 SKIPPED")
        return
    fi
    if "$2"; then STATUS+=("step $1 ok"); else echo "step $1 failed"; STATUS+=("step $1 FAILED"); fi
}

run_step 0 step0_setup 0
run_step 2 step2_qlora_1b 230
run_step 6 step6_load_6_9b 210
run_step 7 step7_hsdp 120
run_step 1 step1_quickstart 60
run_step 3 step3_fsdp2_410m 200
run_step 5 step5_bench_tldr 150
run_step 4 step4_bench_160m 120
run_step 8 step8_heads_1b 200
[ -f "$OUT/RESULTS-gpu.md" ] && echo "== results (printed above) are in $OUT/RESULTS-gpu.md; full logs in $OUT/logs/"
echo "== summary: ${STATUS[*]}; $(elapsed "$T_START") in all"
