#!/usr/bin/env bash
# The LFW View 2 quality benchmark: FaceQAN and every baseline, for each quality model,
# judged by each comparison model (model-specific and cross-model), on the official pairs
# and on all pairs among the 7,701 pair images.
#   bash benchmarks/lfw_quality_benchmark.sh
# Environment: QUALITY_MODELS (default "dlib"), COMPARISON_MODELS (default "dlib sface"),
# FACEQAN_SHARED (default ../shared), MAX_IMAGES (only the first N of the 7,701
# images and the pairs among them; default all), LANDMARKS (default single: the published
# tables in docs/lfw were made before refined landmarks became faceqan's default; refined
# re-scores every image, hours here). Scoring thousands of images takes about an hour
# per FaceQAN model here: run it in the background; every embedding and quality is cached
# in runs/cache, so an interrupted run resumes where it stopped, and a rerun costs minutes.
# Tables go to docs/lfw/<quality>-quality_<comparison>-errors_<protocol>[_first<N>]/results.md
# and are gathered in docs/lfw_benchmark.md (each table's header says its protocol and settings).
set -euo pipefail
cd "$(dirname "$0")/.."
LFW=$(.venv/bin/python -m faceqan.shared_data lfw)  # $FACEQAN_SHARED, else ../shared
FAQ=${FAQ:-.venv/bin/faceqan}
QUALITY_MODELS=${QUALITY_MODELS:-dlib}
COMPARISON_MODELS=${COMPARISON_MODELS:-dlib sface}
LANDMARKS=${LANDMARKS:-single}
summary=docs/lfw_benchmark.md
for quality in $QUALITY_MODELS; do
  methods=(--method faceqan --method serfiq --method flip --method embedding_norm --method sharpness)
  for comparison in $COMPARISON_MODELS; do
    for protocol in official all-pairs; do
      extra=()
      [ -n "${MAX_IMAGES:-}" ] && extra+=(--max-images "$MAX_IMAGES")
      [ "$protocol" = all-pairs ] && extra+=(--all-pairs --bootstrap 30)
      out="docs/lfw/${quality}-quality_${comparison}-errors_${protocol}${MAX_IMAGES:+_first$MAX_IMAGES}"
      "$FAQ" evaluate "$LFW/pairs.txt" "${extra[@]}" --comparison-model "$comparison" --quality-model "$quality" \
        "${methods[@]}" --landmarks "$LANDMARKS" --cache runs/cache --out "$out" --quiet > /dev/null
      echo "wrote $out/results.md"
    done
  done
done
{
  echo "# LFW View 2 quality benchmark"
  echo
  echo "Made by \`QUALITY_MODELS=... COMPARISON_MODELS=... bash benchmarks/lfw_quality_benchmark.sh\`:"
  echo "sections named <quality>-quality_<comparison>-errors_<protocol> cover all 7,701 images; those"
  echo "ending in _first<N> were made with \`MAX_IMAGES=N\` on the first N images only. Each table's"
  echo "header gives its protocol, models and settings. Faces aligned with \`--landmarks $LANDMARKS\`."
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
