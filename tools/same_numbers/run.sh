#!/usr/bin/env bash
# The outputs of 12 small negtransfer jobs, to check that a refactor changes no numbers (tools/same_numbers/README.md).
# Usage: bash tools/same_numbers/run.sh SRC OUT   (SRC: the src/ folder of the checkout to run, e.g. a
# `git worktree add --detach ../before REV` of the commit before the change)
# Each job writes OUT/<name>/ with its own run store (OUT/<name>/runs.sqlite); OUT/<name>/console.txt
# keeps the job's console output, OUT/times.txt the wall time of each job.
set -euo pipefail
SRC=$(cd "${1:?usage: run.sh SRC OUT}" && pwd)
OUT=${2:?usage: run.sh SRC OUT}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
CHEM=${CHEM:-$HERE/../shared/data/etap-chemical}
ONLY=${ONLY:-}            # e.g. ONLY="group-yeast gains" runs only those jobs
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: > "$OUT/times.txt"
export PYTHONHASHSEED=0 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 COLUMNS=200

job() {  # job NAME ARGS...: one negtransfer command into OUT/NAME with its own store
    local name=$1; shift
    if [[ -n "$ONLY" && " $ONLY " != *" $name "* ]]; then return 0; fi
    rm -rf "${OUT:?}/$name"; mkdir -p "$OUT/$name"
    local t0=$SECONDS
    if ! PYTHONPATH="$SRC" "$PY" -m negtransfer "$@" --out "$OUT/$name" -q > "$OUT/$name/console.txt" 2>&1; then
        echo "FAILED: $name (see $OUT/$name/console.txt)" | tee -a "$OUT/times.txt"
        tail -5 "$OUT/$name/console.txt"
        return 1
    fi
    echo "$name $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"
}

Y5=Class1,Class2,Class3,Class4,Class5
Y6=Class1,Class2,Class3,Class4,Class5,Class6
T0=$SECONDS
# (1) the grouping job on yeast, refinement with 2 rounds, held-out prediction check
job group-yeast group --dataset yeast --budget 3 --train-groups 10 --evaluate 10 --seed 0 --epochs 5 --repeats 2 --rounds 2
# (2) the same with every group trained, 5 tasks
job group-exhaustive group --dataset yeast --tasks $Y5 --budget 3 --train-groups 10 --evaluate 10 --seed 0 --epochs 5 --repeats 2 --rounds 2 --exhaustive
# (3)-(5) other grouping methods, small
job group-tag group --dataset yeast --tasks $Y6 --method tag --budget 2 --train-groups 6 --seed 0 --epochs 5 --repeats 2 --rounds 2
job group-grad-tae group --dataset yeast --tasks $Y6 --method grad-tae --budget 2 --train-groups 6 --seed 0 --epochs 5 --repeats 2 --rounds 2
# (5b) the ETAP job again with --trace (a traced all-task run) and the process executor (2 workers)
job group-trace-process group --dataset yeast --tasks $Y6 --budget 2 --train-groups 6 --seed 0 --epochs 5 --repeats 2 --rounds 2 --trace 3 --executor process --workers 2
job group-hoa group --dataset yeast --tasks $Y6 --method hoa --budget 2 --train-groups 6 --seed 0 --epochs 5 --repeats 2 --rounds 2
# (6) the ETAP Chemical tasks (Task_Splits folder) with the paper code's preset, few epochs
if [[ -d "$CHEM" ]]; then
    job group-chemical group --data "$CHEM" --preset etap-chemical --tasks 55,76,78,80,81 --budget 2 --train-groups 6 --evaluate 4 --seed 0 --epochs 10 --batch-size 32 --lr 0.01 --repeats 2 --rounds 2
else
    echo "skipped: group-chemical ($CHEM absent)" | tee -a "$OUT/times.txt"
fi
# (7) gains of 8 random groups
job gains gains --dataset yeast --groups random:8 --repeats 2 --seed 0 --epochs 5
# (8) source selection, smallest settings
job sources sources --dataset tv16 --tasks Oklahoma,Alabama,Alaska,Arizona,Arkansas,Colorado,Connecticut,Delaware --target Oklahoma --alpha 3 --subsets 16 --holdout 8 --seed 0 --epochs 5 --repeats 2
# (9) model comparison: a table dataset and a clinical time-series one
job compare compare --dataset heart-hospitals --models stl,bmtl,vmtl --runs 1 --seed 0 --iterations 200
job compare-clinical compare --dataset pbcseq --models stl-lstm,tp-amtl --runs 1 --seed 0 --epochs 3
# (10) grouping methods side by side
job compare-grouping compare-grouping --dataset yeast --tasks Class1,Class2,Class3,Class4 --methods etap,hoa --budgets 1,2 --seeds 0 --train-groups 2 --repeats 1 --rounds 1 --exhaustive --epochs 5
echo "total $((SECONDS - T0)) s" | tee -a "$OUT/times.txt"
