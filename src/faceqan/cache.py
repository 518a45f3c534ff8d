"""Per-image results cached by (file content, what computed them): reruns and second
methods reuse what is done. One append-only JSONL file per setting, keyed by the SHA-256
of the image file, so an interrupted computation keeps what it finished."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ResultCache:
    """Maps an image file's content digest to a dict of values, for one setting."""

    def __init__(self, folder: str | Path, setting: dict) -> None:
        name = json.dumps(setting, sort_keys=True)
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        self.path = Path(folder) / f"{setting.get('kind', 'cache')}-{digest}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line torn by an interruption
                    self.entries[record["sha"]] = record["values"]
        else:
            self.path.with_suffix(".setting.json").write_text(name)

    def get(self, digest: str) -> dict | None:
        return self.entries.get(digest)

    def put_many(self, items: dict[str, dict]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            for digest, values in items.items():
                handle.write(json.dumps({"sha": digest, "values": values}) + "\n")
        self.entries.update(items)
