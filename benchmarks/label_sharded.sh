#!/usr/bin/env bash
# Teacher labels for a long image list on a big machine: the list is cut into SHARDS pieces,
# each scored by its own `faceqan score` process (face preparation runs on the CPU, one core
# each; the attack runs on DEVICE), then the pieces are joined into one CSV beside one
# settings file. Used for the students' extra training labels on a GPU machine.
#   bash benchmarks/label_sharded.sh LIST MODEL OUT.csv [SHARDS] [DEVICE]
set -euo pipefail
LIST=$1 MODEL=$2 OUTPUT=$3 SHARDS=${4:-8} DEVICE=${5:-cuda}
FAQ=${FAQ:-python3 -m faceqan}
WORK=$(mktemp -d)
split -n "l/$SHARDS" -d --additional-suffix=.txt "$LIST" "$WORK/shard-"
shards=("$WORK"/shard-*.txt)
for shard in "${shards[@]}"; do
  { $FAQ score "$shard" --model "$MODEL" --device "$DEVICE" -o "$shard.csv" --quiet > "$shard.log" 2>&1 || [ $? -eq 3 ]; } &
done
wait
for shard in "${shards[@]}"; do tail -1 "$shard.log"; done
first=${shards[0]}.csv
head -1 "$first" > "$OUTPUT"
for shard in "${shards[@]}"; do
  tail -n +2 "$shard.csv" >> "$OUTPUT"
  # Every shard ran with the same settings (same version, model hash, options).
  python3 -c "import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); [d.pop('provenance') for d in (a,b)]; sys.exit(a!=b)" "$first.settings.json" "$shard.csv.settings.json"
done
cp "$first.settings.json" "$OUTPUT.settings.json"
echo "$(($(wc -l < "$OUTPUT") - 1)) rows -> $OUTPUT"
