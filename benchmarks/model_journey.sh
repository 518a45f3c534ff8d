#!/usr/bin/env bash
# A user's own model, from its file to a shipped one-pass student, timed step by step:
#   MODEL=FILE.onnx [FACES=24] [CALIBRATE=4] [OUT=runs/journey] bash benchmarks/model_journey.sh
# 1 load + check (flip only), 2 `faceqan calibrate` (eps for this model), 3 FaceQAN labels of
# FACES LFW photos at that eps, 4 `faceqan distill`, 5 the student's scores, 6 `faceqan export`.
# Prints each step's wall time and the score command's own seconds per image. Resumable: a
# step whose output exists is skipped (delete OUT to start again).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MODEL:?set MODEL to a model file}"
FACES=${FACES:-24}
CALIBRATE=${CALIBRATE:-4}
OUT=${OUT:-runs/journey}
FACEQAN=${FACEQAN:-.venv/bin/faceqan}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
LIST="$OUT/faces.txt"
if [ ! -s "$LIST" ]; then
  # Every 50th image of LFW View 1's training list (people the judging protocols never use).
  "$PYTHON" -c "
import sys
from faceqan.shared_data import lfw
root = lfw()
names = [line.split() for line in (root / 'pairsDevTrain-images.txt').read_text().splitlines() if line.strip()]
for name, number in names[::50][:int(sys.argv[1])]:
    print(root / 'images_deepfunneled' / name / f'{name}_{int(number):04d}.jpg')
" "$FACES" > "$LIST"
fi
step() { local name=$1; shift; local start; start=$(date +%s.%N); "$@"; echo "journey: $name took $(echo "$(date +%s.%N) - $start" | bc) s"; }

step "1 load + check (one face, flip)" "$FACEQAN" score "$(head -1 "$LIST")" -o "$OUT/check.csv" --model "$MODEL" --method flip --resume --quiet
if [ ! -s "$OUT/eps.txt" ]; then
  step "2 calibrate ($CALIBRATE faces)" "$FACEQAN" calibrate "$LIST" --model "$MODEL" --max-images "$CALIBRATE" | tee "$OUT/calibrate.txt"
  grep -o "use --eps [0-9.e-]*" "$OUT/calibrate.txt" | sed "s/use --eps //" > "$OUT/eps.txt"
fi
EPS=$(cat "$OUT/eps.txt")
step "3 FaceQAN labels ($FACES faces, eps $EPS)" "$FACEQAN" score "$LIST" -o "$OUT/labels.csv" --model "$MODEL" --eps "$EPS" --resume
[ -s "$OUT/student.pt" ] || step "4 distill" "$FACEQAN" distill "$OUT/labels.csv" --model "$MODEL" -o "$OUT/student.pt" --cache "$OUT/cache" --quiet
rm -f "$OUT/student.csv" "$OUT/student.csv.settings.json"
step "5 student scores ($FACES faces)" "$FACEQAN" score "$LIST" -o "$OUT/student.csv" --model "$MODEL" --student "$OUT/student.pt"
step "6 export" "$FACEQAN" export --model "$MODEL" --student "$OUT/student.pt" -o "$OUT/student.onnx"
ls -l "$OUT/student.pt" "$OUT/student.onnx"
