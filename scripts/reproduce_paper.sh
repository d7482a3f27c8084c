#!/usr/bin/env bash
# Reproduce the paper's study end to end with pfgraph's public command line:
#   simulate the B=0 and B=0.5 training sets (--fields), an independent test set for each,
#   and the Pythia jet test set; train the eight models with their paper configs
#   and the improved variants; evaluate every run on its own field's test set (B=0.5 runs also on the jet set);
#   write one comparison report per test set and DIR/RESULTS.md (scripts/results_table.py).
#
#   scripts/reproduce_paper.sh [--quick] [--out DIR] [--device auto|cpu|cuda]
#                              [--events N] [--test-events N] [--jet-events N] [--epochs E]
#                              [--models "analytic mlp ..."] [--fields "000 050"] [--no-results]
#                              [--update-docs]
#
# Defaults are the paper's sizes (10 000 training events, 1 000 test and jet events, 50 epochs
# with early stopping): that run wants a GPU. --quick is a CPU smoke run (600 events, one epoch).
# Sizes may be set one by one for a reduced CPU study; docs/RESULTS.md records what was run.
# Re-running resumes: existing data files are kept, trainings continue from their last
# checkpoint, finished evaluations are skipped. Everything, the log and RESULTS.md included,
# stays under DIR (a relative DIR is taken from the current folder; default: paper/ in the
# repository). Only --update-docs also writes the repository's recorded evidence,
# docs/RESULTS.md and docs/results/, from this run.
set -euo pipefail
CALLER_PWD=$PWD
cd "$(dirname "$0")/.."
PF="${PFGRAPH:-.venv/bin/pfgraph}"
PY="${PYTHON:-.venv/bin/python}"
OUT=paper
OUT_GIVEN=0
DEVICE=auto
EVENTS=10000; TEST_EVENTS=1000; JET_EVENTS=1000; EPOCHS=50
ALL_MODELS="analytic mlp cnn cnn_attn cnn3d unet unet_attn rnn edgeconv mlp_plus cnn_attn_plus unet_attn_plus"
MODELS="$ALL_MODELS"
FIELDS="000 050"
RESULTS=1
UPDATE_DOCS=0
ARGS=""  # quoted, so that the logged command can be pasted back
if [ $# -gt 0 ]; then ARGS=$(printf " %q" "$@"); fi
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) EVENTS=600; TEST_EVENTS=60; JET_EVENTS=60; EPOCHS=1 ;;
    --out) OUT="$2"; OUT_GIVEN=1; shift ;;
    --device) DEVICE="$2"; shift ;;
    --events) EVENTS="$2"; shift ;;
    --test-events) TEST_EVENTS="$2"; shift ;;
    --jet-events) JET_EVENTS="$2"; shift ;;
    --epochs) EPOCHS="$2"; shift ;;
    --models) MODELS="$2"; shift ;;
    --fields) FIELDS="$2"; shift ;;
    --no-results) RESULTS=0 ;;
    --update-docs) UPDATE_DOCS=1 ;;
    *) echo "reproduce_paper.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
case "$OUT" in
  /*) ;;
  *) [ "$OUT_GIVEN" = 1 ] && OUT="$CALLER_PWD/$OUT" ;;
esac
mkdir -p "$OUT/data"
# a killed call leaves its last progress bar without a newline: start this call's header on a line of its own
[ -s "$OUT/reproduce.log" ] && [ -n "$(tail -c 1 "$OUT/reproduce.log")" ] && echo >> "$OUT/reproduce.log"
exec > >(tee -a "$OUT/reproduce.log") 2>&1
echo "# reproduce_paper.sh$ARGS"
echo "# started $(date -u +%FT%TZ) on $(uname -n): events=$EVENTS test=$TEST_EVENTS jets=$JET_EVENTS epochs=$EPOCHS device=$DEVICE fields=$FIELDS"
echo "# models: $MODELS"
T0=$(date +%s)

simulate() {  # simulate FILE PRESET EVENTS [SEED]
  local file="$1" preset="$2" n="$3" seed="${4:-}"
  [ -f "$file" ] && return 0
  $PF simulate --config "$preset" --events "$n" --out "$file" ${seed:+--seed "$seed"}
}

for field in $FIELDS; do
  simulate "$OUT/data/b${field}.root" "gauss_b${field}" "$EVENTS"
  # an independent test set: same detector, another master seed (no event shared with training)
  simulate "$OUT/data/b${field}_test.root" "gauss_b${field}" "$TEST_EVENTS" 1${field}7
done
simulate "$OUT/data/b050_jet.root" gauss_b050_jet "$JET_EVENTS"

evaluate() {  # evaluate RUN DATA OUTDIR
  [ -f "$3/metrics.json" ] && [ "$3/metrics.json" -nt "$1/checkpoint_best.pt" ] && return 0
  $PF evaluate "$1" --data "$2" --out "$3" --device "$DEVICE"
}

for field in $FIELDS; do
  for m in $MODELS; do
    epochs=$EPOCHS; [ "$m" = analytic ] && epochs=0
    run="$OUT/runs/b${field}/$m"
    $PF train --model "$m" --data "$OUT/data/b${field}.root" --out "$run" --epochs "$epochs" --device "$DEVICE"
    evaluate "$run" "$OUT/data/b${field}_test.root" "$OUT/evals/b${field}_test/$m"
    [ "$field" = 050 ] && evaluate "$run" "$OUT/data/b050_jet.root" "$OUT/evals/b050_jet/$m"
  done
done

for set in "$OUT"/evals/*/; do
  set=${set%/}
  dirs=()  # every model evaluated on this set so far (earlier calls' too), in the usual order
  for m in $ALL_MODELS; do [ -f "$set/$m/metrics.json" ] && dirs+=("$set/$m"); done
  for d in "$set"/*/; do
    d=${d%/}
    case " $ALL_MODELS " in *" $(basename "$d") "*) ;; *) [ -f "$d/metrics.json" ] && dirs+=("$d") ;; esac
  done
  [ ${#dirs[@]} -gt 0 ] && $PF report "${dirs[@]}" --out "$OUT/reports/$(basename "$set")"
done
echo "# finished $(date -u +%FT%TZ), $(( $(date +%s) - T0 )) s"
if [ "$RESULTS" = 1 ]; then
  $PY scripts/results_table.py "$OUT" --out "$OUT/RESULTS.md" --keep "$OUT/results"
fi
if [ "$UPDATE_DOCS" = 1 ]; then  # asked for: this run becomes the repository's recorded evidence
  $PY scripts/results_table.py "$OUT" --out docs/RESULTS.md --keep docs/results
fi
