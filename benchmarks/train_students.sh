#!/usr/bin/env bash
# Reproduce a built-in student from the data, then judge it on faces it never saw.
#   bash benchmarks/train_students.sh [MODEL]        (dlib or sface; default dlib)
# 1. The training set: LFW View 1's 3,443 training images + one seeded degraded copy each
#    (benchmarks/make_student_set.py, under runs/student; rerunning writes the same files).
# 2. Teacher labels: FaceQAN at the model's defaults, resumable (hours: rerun to continue);
#    labels committed in benchmarks/student_labels/ are taken as the starting point.
# 3. distill -> src/faceqan/student/builtin/MODEL.pt (deterministic), and the student's 0-100
#    scale from its scores of the originals (src/faceqan/scales/MODEL.faceqan-student.json).
# 4. Judgement: all pairs among LFW View 1's test images (people disjoint from the training
#    file's), the model's own errors and the other model's, the student first (paired intervals
#    are method - student), against FaceQAN, s_f, SER-FIQ, the embedding norm and random.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-dlib}
LFW=$(.venv/bin/python -m faceqan.shared_data lfw)  # $FACEQAN_SHARED, else ../shared
FAQ=${FAQ:-.venv/bin/faceqan}
OTHER=$([ "$MODEL" = dlib ] && echo sface || echo dlib)
[ -f runs/student/images.txt ] || .venv/bin/python benchmarks/make_student_set.py --lfw "$LFW"
if [ ! -f "runs/student/labels_$MODEL.csv" ] && [ -f "benchmarks/student_labels/labels_$MODEL.csv" ]; then
  cp "benchmarks/student_labels/labels_$MODEL.csv" "benchmarks/student_labels/labels_$MODEL.csv.settings.json" runs/student/
fi
"$FAQ" score runs/student/images.txt --model "$MODEL" -o "runs/student/labels_$MODEL.csv" --resume --quiet || [ $? -eq 3 ]
mkdir -p src/faceqan/student/builtin runs/judge
"$FAQ" distill "runs/student/labels_$MODEL.csv" --model "$MODEL" -o "src/faceqan/student/builtin/$MODEL.pt" --cache runs/cache
# The student's own 0-100 scale: its scores of the 3,443 originals (src/faceqan/scales/MODEL.faceqan-student.json).
grep -v /degraded/ runs/student/images.txt > runs/student/originals.txt
rm -f "runs/student/student_$MODEL.csv" "runs/student/student_$MODEL.csv.settings.json"
"$FAQ" score runs/student/originals.txt --model "$MODEL" --method faceqan-student -o "runs/student/student_$MODEL.csv" --quiet || [ $? -eq 3 ]
.venv/bin/python benchmarks/fit_scale.py "runs/student/student_$MODEL.csv" --model "$MODEL" --method faceqan-student
for errors in "$MODEL" "$OTHER"; do
  "$FAQ" evaluate "$LFW/pairsDevTest.txt" --all-pairs --comparison-model "$errors" --quality-model "$MODEL" \
    --method faceqan-student --method faceqan --method flip --method serfiq --method embedding_norm \
    --cache runs/cache --bootstrap 100 --quiet --out "runs/judge/$MODEL-quality_$errors-errors"
done
grep -A12 "^| method" "runs/judge/$MODEL-quality_$MODEL-errors/results.md"
