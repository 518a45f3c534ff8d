#!/usr/bin/env bash
# FaceQAN's eps (attack strength) per model, studied on LFW View 1 only (pairsDevTrain.txt,
# all pairs among its first N images): never on View 2, which the benchmark reports.
#   bash benchmarks/eps_study.sh [MODEL] [N]      (defaults: dlib 400; EPS_VALUES="0.001 0.01 0.03")
# Writes runs/eps_study/MODEL/<setting>/results.md; qualities are cached in runs/cache.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-dlib}
N=${2:-400}
LFW=${FACEQAN_LFW:-../shared/data/lfw}
FAQ=${FAQ:-.venv/bin/faceqan}
OUT=runs/eps_study/$MODEL
common=("$LFW/pairsDevTrain.txt" --all-pairs --max-images "$N" --comparison-model "$MODEL" --cache runs/cache --bootstrap 50 --quiet)
"$FAQ" evaluate "${common[@]}" --method flip --method sharpness --out "$OUT/baselines" > /dev/null
for eps in ${EPS_VALUES:-0.001 0.01 0.03}; do
  "$FAQ" evaluate "${common[@]}" --method faceqan --eps "$eps" --out "$OUT/paper_eps$eps" > /dev/null
done
[ -z "${OFFICIAL:-}" ] || "$FAQ" evaluate "${common[@]}" --method faceqan --variant official --eps 0.001 --out "$OUT/official_eps0.001" > /dev/null
for f in "$OUT"/*/results.md; do echo "== $f"; grep -E "^\| (faceqan|s_f|flip|sharp|random)" "$f"; done
