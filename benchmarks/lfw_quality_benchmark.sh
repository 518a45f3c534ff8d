#!/usr/bin/env bash
# The LFW View 2 quality benchmark: FaceQAN, the one-pass methods and the baselines, for each
# quality model, judged by each comparison model (model-specific and cross-model), on the
# official pairs and on all pairs among the 7,701 pair images; then README's headline table.
#   bash benchmarks/lfw_quality_benchmark.sh
# Environment: QUALITY_MODELS (default "dlib sface"), COMPARISON_MODELS (default "dlib sface"),
# FACEQAN_SHARED (default ../shared), BOOTSTRAP (all-pairs resamples, default 30).
# FaceQAN's qualities are the committed scores of benchmarks/view2_scores/MODEL_all.csv (this
# faceqan version, each model's defaults, refined landmarks; their paths rewritten to this
# machine's LFW under runs/); every other method runs here, cached in runs/cache, so an
# interrupted run resumes where it stopped (a first run: about an hour per quality model here;
# run it in the background). The students' training people (LFW View 1's training file and the
# extra pool) are in View 2: their rows are marked so.
# Tables go to docs/lfw/<quality>-quality_<comparison>-errors_<protocol>/results.md, gathered in
# docs/lfw_benchmark.md; benchmarks/lfw_headline.py writes README's table from one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
LFW=$(.venv/bin/python -m faceqan.shared_data lfw)  # $FACEQAN_SHARED, else ../shared
FAQ=${FAQ:-.venv/bin/faceqan}
QUALITY_MODELS=${QUALITY_MODELS:-dlib sface}
COMPARISON_MODELS=${COMPARISON_MODELS:-dlib sface}
STUDENT_NOTE="faceqan-student (trained on View 2 people)"
summary=docs/lfw_benchmark.md
mkdir -p runs/view2
for quality in $QUALITY_MODELS; do
  scores="runs/view2/faceqan_$quality.csv"  # the committed scores, paths pointing at this machine's LFW
  sed -E "s#^[^,]*/images_deepfunneled/#$LFW/images_deepfunneled/#" "benchmarks/view2_scores/${quality}_all.csv" > "$scores"
  methods=(--quality-csv "faceqan=$scores" --quality-csv "faceqan q_adv (no symmetry)=$scores:q_adv"
           --method faceqan-student --method froq --method flip --method serfiq --method embedding_norm --method sharpness)
  for comparison in $COMPARISON_MODELS; do
    for protocol in official all-pairs; do
      extra=()
      [ "$protocol" = all-pairs ] && extra+=(--all-pairs --bootstrap "${BOOTSTRAP:-30}")
      out="docs/lfw/${quality}-quality_${comparison}-errors_${protocol}"
      "$FAQ" evaluate "$LFW/pairs.txt" "${extra[@]}" --comparison-model "$comparison" --quality-model "$quality" \
        "${methods[@]}" --cache runs/cache --out "$out" --quiet > /dev/null
      sed -i "s/^| faceqan-student |/| $STUDENT_NOTE |/" "$out/results.md"
      echo "wrote $out/results.md"
    done
  done
done
{
  echo "# LFW View 2 quality benchmark"
  echo
  echo "Made by \`bash benchmarks/lfw_quality_benchmark.sh\` with faceqan $(.venv/bin/python -c 'import faceqan; print(faceqan.__version__)')"
  echo "(refined landmarks). FaceQAN's rows come from benchmarks/view2_scores/ (each model's defaults)."
  echo "Each table's header gives its protocol, models and settings. The students were trained on"
  echo "people who are in View 2 (every LFW person outside the two judging protocols): their rows are marked, and"
  echo "[docs/student.md](student.md) judges them on unseen people."
  for f in docs/lfw/*/results.md; do
    echo
    echo "## $(basename "$(dirname "$f")")"
    echo
    cat "$f"
    echo
    echo "![ERC](lfw/$(basename "$(dirname "$f")")/erc.png) ![EDC](lfw/$(basename "$(dirname "$f")")/edc.png)"
  done
} > "$summary"
echo "wrote $summary"
.venv/bin/python benchmarks/lfw_headline.py docs/lfw/dlib-quality_dlib-errors_all-pairs/results.csv README.md
