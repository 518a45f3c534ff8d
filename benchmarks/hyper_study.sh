#!/usr/bin/env bash
# FaceQAN's hyper-parameters per model, studied on LFW View 1 only (pairsDevTrain.txt, all
# pairs among its first N images): never on View 2, which the benchmark reports.
#   bash benchmarks/hyper_study.sh [MODEL] [N]        (defaults: dlib 400)
# Environment: EPS_VALUES (default "0.001 0.01 0.03"), STEPS_VALUES and COPIES_VALUES (l and k,
# default none), each varied alone around the model's defaults; OFFICIAL=1 adds the official
# variant at eps 0.001. Writes runs/hyper_study/MODEL/<setting>/results.md and prints the
# FaceQAN, s_f, sharpness and random rows; qualities are cached in runs/cache.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-dlib}
N=${2:-400}
LFW=$(.venv/bin/python -m faceqan.shared_data lfw)  # $FACEQAN_SHARED, else ../shared
FAQ=${FAQ:-.venv/bin/faceqan}
OUT=runs/hyper_study/$MODEL
common=("$LFW/pairsDevTrain.txt" --all-pairs --max-images "$N" --comparison-model "$MODEL" --cache runs/cache --bootstrap 50 --quiet)
"$FAQ" evaluate "${common[@]}" --method flip --method sharpness --out "$OUT/baselines" > /dev/null
for eps in ${EPS_VALUES-0.001 0.01 0.03}; do
  "$FAQ" evaluate "${common[@]}" --method faceqan --eps "$eps" --out "$OUT/paper_eps$eps" > /dev/null
done
for steps in ${STEPS_VALUES:-}; do
  "$FAQ" evaluate "${common[@]}" --method faceqan --steps "$steps" --out "$OUT/paper_l$steps" > /dev/null
done
for copies in ${COPIES_VALUES:-}; do
  "$FAQ" evaluate "${common[@]}" --method faceqan --copies "$copies" --out "$OUT/paper_k$copies" > /dev/null
done
[ -z "${OFFICIAL:-}" ] || "$FAQ" evaluate "${common[@]}" --method faceqan --variant official --eps 0.001 --out "$OUT/official_eps0.001" > /dev/null
for f in "$OUT"/*/results.md; do echo "== $f"; grep -E "^(FaceQAN:|\| (faceqan|s_f|flip|sharp|random))" "$f"; done
