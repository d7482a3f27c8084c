#!/usr/bin/env bash
# Reproduce the paper's study end to end with pfgraph's public command line:
#   simulate B=0 and B=0.5 training sets and the Pythia jet test set at paper size,
#   train all eight models with their paper configs (and the improved configs),
#   evaluate on the B=0.5 test split and on the jet set, and write the comparison report.
#
#   scripts/reproduce_paper.sh [--quick] [--out DIR] [--device auto|cpu|cuda]
#
# --quick is a CPU smoke run (small datasets, one short epoch per model); the full run wants a GPU.
# The metrics.json of every evaluation and this script's log are kept under DIR, so
# docs/RESULTS.md can be regenerated from a recorded run (scripts/results_table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PF="${PFGRAPH:-.venv/bin/pfgraph}"
OUT=paper
QUICK=0
DEVICE=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT="$2"; shift ;;
    --device) DEVICE="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  NTRAIN=600; NJET=60; EPOCHS=1; MAXEV="--max-events 600"
else
  NTRAIN=10000; NJET=1000; EPOCHS=50; MAXEV=""
fi
mkdir -p "$OUT/data"
exec > >(tee -a "$OUT/reproduce.log") 2>&1
echo "# reproduce_paper.sh quick=$QUICK device=$DEVICE started $(date -u +%FT%TZ) on $(uname -n)"

[ -f "$OUT/data/b000.root" ] || $PF simulate --config gauss_b000 --events $NTRAIN --out "$OUT/data/b000.root" --shards 2 --workers 2
[ -f "$OUT/data/b050.root" ] || $PF simulate --config gauss_b050 --events $NTRAIN --out "$OUT/data/b050.root"
[ -f "$OUT/data/b050_jet.root" ] || $PF simulate --config gauss_b050_jet --events $NJET --out "$OUT/data/b050_jet.root"

MODELS_IMAGE="analytic mlp cnn cnn_attn cnn3d unet unet_attn rnn"
EVALS=()
for m in $MODELS_IMAGE edgeconv; do
  repr=image; [ "$m" = edgeconv ] && repr=graph
  epochs=$EPOCHS; [ "$m" = analytic ] && epochs=0
  $PF train --repr $repr --model $m --data "$OUT/data/b050.root" --out "$OUT/runs/$m" --epochs $epochs $MAXEV --device "$DEVICE"
  $PF evaluate "$OUT/runs/$m" --data "$OUT/data/b050_jet.root" --out "$OUT/evals/${m}_jet" --device "$DEVICE"
  EVALS+=("$OUT/evals/${m}_jet")
done
# improved variants beside their paper versions (never silent changes to the paper configs)
for cfg in configs/model/*_plus.yaml; do
  [ -e "$cfg" ] || continue
  name=$(basename "$cfg" .yaml); base=${name%_plus}
  $PF train --repr image --model "$base" --config "$cfg" --data "$OUT/data/b050.root" --out "$OUT/runs/$name" --epochs $EPOCHS $MAXEV --device "$DEVICE"
  $PF evaluate "$OUT/runs/$name" --data "$OUT/data/b050_jet.root" --out "$OUT/evals/${name}_jet" --device "$DEVICE"
  EVALS+=("$OUT/evals/${name}_jet")
done
$PF report "${EVALS[@]}" --out "$OUT/report"
echo "# finished $(date -u +%FT%TZ)"
