"""Pair protocols: which image pairs are compared, and whether each pair is mated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    path1: str
    path2: str
    mated: bool
    fold: int


def _lfw_image(root: Path, name: str, number: str) -> str:
    return str(root / "images_deepfunneled" / name / f"{name}_{int(number):04d}.jpg")


def read_lfw_pairs(pairs_file: str | Path, image_root: str | Path | None = None) -> list[Pair]:
    """LFW's pairs.txt (View 2: '10 300' header, folds of mated then non-mated lines) or
    pairsDevTrain/DevTest.txt (View 1: a single count header, one fold)."""
    pairs_file = Path(pairs_file)
    root = Path(image_root) if image_root is not None else pairs_file.parent
    lines = [line.split() for line in pairs_file.read_text().splitlines() if line.strip()]
    header, body = lines[0], lines[1:]
    per_fold = 2 * int(header[1]) if len(header) == 2 else len(body)
    pairs = []
    for index, fields in enumerate(body):
        fold = index // per_fold
        if len(fields) == 3:
            name, a, b = fields
            pairs.append(Pair(_lfw_image(root, name, a), _lfw_image(root, name, b), True, fold))
        elif len(fields) == 4:
            name1, a, name2, b = fields
            pairs.append(Pair(_lfw_image(root, name1, a), _lfw_image(root, name2, b), False, fold))
        else:
            raise ValueError(f"{pairs_file}: line {index + 2} is not an LFW pair: {' '.join(fields)}")
    return pairs


def unique_paths(pairs: list[Pair]) -> list[str]:
    return list(dict.fromkeys(p for pair in pairs for p in (pair.path1, pair.path2)))
