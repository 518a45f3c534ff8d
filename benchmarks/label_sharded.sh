#!/usr/bin/env bash
# Teacher labels for a long image list on a big machine: the list is cut into SHARDS pieces,
# each scored by its own `faceqan score` process (face preparation runs on the CPU, one core
# each; the attack runs on DEVICE), then the pieces are joined into one CSV beside one
# settings file. Used for the students' extra training labels on a GPU machine.
#   bash benchmarks/label_sharded.sh LIST MODEL OUT.csv [SHARDS] [DEVICE]
# Resumable: the shards live in OUT.shards/; rerun the same command to continue. A rerun first
# drops each shard's score_error rows (a GPU out of memory with many processes on one card),
# so only those faces and the ones not reached are scored again. BATCH=N sets --batch-size
# (smaller batches, less GPU memory per process).
set -euo pipefail
LIST=$1 MODEL=$2 OUTPUT=$3 SHARDS=${4:-8} DEVICE=${5:-cuda}
FAQ=${FAQ:-python3 -m faceqan}
WORK="$OUTPUT.shards"
mkdir -p "$WORK"
if [ ! -f "$WORK/shards.txt" ]; then
  split -n "l/$SHARDS" -d --additional-suffix=.txt "$LIST" "$WORK/shard-"
  echo "$SHARDS $(sha256sum < "$LIST")" > "$WORK/shards.txt"
elif [ "$(cat "$WORK/shards.txt")" != "$SHARDS $(sha256sum < "$LIST")" ]; then
  echo "$WORK was cut from another list or shard count: remove it to start over" >&2
  exit 2
fi
shards=("$WORK"/shard-*.txt)
for shard in "${shards[@]}"; do
  if [ -f "$shard.csv" ]; then  # keep every row but the failed ones, which are scored again
    python3 -c "import csv,sys; r=csv.DictReader(open(sys.argv[1], newline='')); rows=list(r); keep=[row for row in rows if row['status'] != 'score_error']
w=csv.DictWriter(open(sys.argv[1] + '.tmp', 'w', newline=''), fieldnames=r.fieldnames); w.writeheader(); w.writerows(keep)
print(f'{sys.argv[1]}: {len(rows) - len(keep)} failed rows to score again', file=sys.stderr)" "$shard.csv"
    mv "$shard.csv.tmp" "$shard.csv"
  fi
  { $FAQ score "$shard" --model "$MODEL" --device "$DEVICE" ${BATCH:+--batch-size "$BATCH"} -o "$shard.csv" --resume --quiet >> "$shard.log" 2>&1 || [ $? -eq 3 ]; } &
done
wait
for shard in "${shards[@]}"; do tail -1 "$shard.log"; done
first=${shards[0]}.csv
head -1 "$first" > "$OUTPUT.tmp"
for shard in "${shards[@]}"; do
  tail -n +2 "$shard.csv" >> "$OUTPUT.tmp"
  # Every shard ran with the same settings (same version, model hash, options).
  python3 -c "import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); [d.pop('provenance') for d in (a,b)]; sys.exit(a!=b)" "$first.settings.json" "$shard.csv.settings.json"
done
cp "$first.settings.json" "$OUTPUT.settings.json"
mv "$OUTPUT.tmp" "$OUTPUT"
echo "$(($(wc -l < "$OUTPUT") - 1)) rows ($(grep -c ',score_error,' "$OUTPUT" || true) failed) -> $OUTPUT"
