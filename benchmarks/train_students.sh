#!/usr/bin/env bash
# Reproduce a built-in student from the data, then judge it on people no student saw.
#   bash benchmarks/train_students.sh [MODEL]        (dlib or sface; default dlib; THETA=0.5)
# dlib's shipped student (v4) tunes rank-32 changes of its last 3 residual blocks' convs with a
# linear head (BLOCKS=3 RANK=32, its defaults; ~7 min on 2 cores; a 1 MB file); RANK=0 tunes the
# whole blocks (v3, a 14 MB file, not shipped), BLOCKS=0 makes the ridge head on pooled features
# (v2, SFace's shipped student). For SFace, an ONNX graph, BLOCKS counts convolutions of a graph
# tail (student.graph_tail): BLOCKS=3 RANK=32 validated ahead of the ridge, not yet judged. docs/student.md.
# 1. Training faces: LFW View 1's 3,443 training images and the extra pool's 3,569 (every other
#    LFW image whose person is in neither judging protocol), each with one seeded degraded copy
#    (benchmarks/make_student_set.py, under runs/student; rerunning writes the same files).
# 2. Teacher labels: FaceQAN at the model's defaults, resumable (hours: rerun to continue);
#    the committed ones in benchmarks/student_labels/ are the starting point. Then
#    benchmarks/student_pool.py writes the unseen-people protocol and drops its people and
#    pairsDevTest.txt's from the labels (runs/student/v2/labels_MODEL.csv).
# 3. distill (labels refined by identity, step THETA; labels of judged people refused) ->
#    src/faceqan/student/builtin/MODEL.pt (seeded), and the student's 0-100 scale from
#    its scores of View 1's training originals (src/faceqan/scales/MODEL.faceqan-student.json).
# 4. Judgement of both models' students: benchmarks/judge_students.py (both protocols, both
#    models' errors, 100 bootstrap resamples, goals printed) -> runs/judge/students.md.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-dlib}
THETA=${THETA:-0.5}
if [ "$MODEL" = dlib ]; then BLOCKS=${BLOCKS:-3} RANK=${RANK:-32}; else BLOCKS=${BLOCKS:-0} RANK=${RANK:-0}; fi
TUNE=(); [ "$BLOCKS" -gt 0 ] && TUNE=(--finetune-blocks "$BLOCKS")
[ "$RANK" -gt 0 ] && TUNE+=(--finetune-rank "$RANK")
LFW=$(.venv/bin/python -m faceqan.shared_data lfw)  # $FACEQAN_SHARED, else ../shared
FAQ=${FAQ:-.venv/bin/faceqan}
[ -f runs/student/images.txt ] || .venv/bin/python benchmarks/make_student_set.py --lfw "$LFW"
[ -f runs/student/images_extra.txt ] || .venv/bin/python benchmarks/make_student_set.py --lfw "$LFW" --pool extra
for pool in "" _extra; do
  labels="runs/student/labels_$MODEL$pool.csv"
  if [ ! -f "$labels" ] && [ -f "benchmarks/student_labels/labels_$MODEL$pool.csv" ]; then
    cp "benchmarks/student_labels/labels_$MODEL$pool.csv" "benchmarks/student_labels/labels_$MODEL$pool.csv.settings.json" runs/student/
  fi
  "$FAQ" score "runs/student/images$pool.txt" --model "$MODEL" -o "$labels" --resume --quiet || [ $? -eq 3 ]
done
.venv/bin/python benchmarks/student_pool.py --lfw "$LFW" --labels runs/student --out runs/student/v2
"$FAQ" distill "runs/student/v2/labels_$MODEL.csv" --model "$MODEL" -o "src/faceqan/student/builtin/$MODEL.pt" --cache runs/cache \
  --disjoint-from "$LFW/pairsDevTest.txt" --disjoint-from benchmarks/protocols/lfw_unseen_pairs.txt --refine-labels "$THETA" "${TUNE[@]}"
grep -v /degraded/ runs/student/images.txt > runs/student/originals.txt
rm -f "runs/student/student_$MODEL.csv" "runs/student/student_$MODEL.csv.settings.json"
"$FAQ" score runs/student/originals.txt --model "$MODEL" --method faceqan-student -o "runs/student/student_$MODEL.csv" --quiet || [ $? -eq 3 ]
.venv/bin/python benchmarks/fit_scale.py "runs/student/student_$MODEL.csv" --model "$MODEL" --method faceqan-student
.venv/bin/python benchmarks/judge_students.py --bootstrap 100 --out runs/judge/students.md
