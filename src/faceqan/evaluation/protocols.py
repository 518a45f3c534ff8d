"""Pair protocols: which images are compared, and whether each pair is mated.

A protocol is a list of images and index arrays of pairs into it, with each pair's mated
flag, fold, and group (the identity of its first image, the unit of bootstrap resampling).
Kinds: LFW-style pairs.txt, a CSV ``path1,path2,mated[,fold]``, every pair among the images
of a folder of identity sub-folders, and every pair among the images of another protocol.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..pipeline import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Protocol:
    images: list[str]
    first: np.ndarray
    second: np.ndarray
    mated: np.ndarray
    fold: np.ndarray
    group: np.ndarray
    name: str = ""

    def __len__(self) -> int:
        return int(self.first.size)

    def subset(self, keep: np.ndarray) -> Protocol:
        return Protocol(self.images, self.first[keep], self.second[keep], self.mated[keep], self.fold[keep], self.group[keep], self.name)


def identity_of(path: str) -> str:
    """An image's identity: the name of its folder (LFW and identity-folder layouts)."""
    return Path(path).parent.name


def _build(pairs: list[tuple[str, str, bool, int]], name: str) -> Protocol:
    images = list(dict.fromkeys(p for a, b, _, _ in pairs for p in (a, b)))
    index = {path: i for i, path in enumerate(images)}
    identities = {ident: i for i, ident in enumerate(dict.fromkeys(identity_of(p) for p in images))}
    return Protocol(
        images,
        np.array([index[a] for a, _, _, _ in pairs], dtype=np.int64),
        np.array([index[b] for _, b, _, _ in pairs], dtype=np.int64),
        np.array([m for _, _, m, _ in pairs], dtype=bool),
        np.array([f for _, _, _, f in pairs], dtype=np.int64),
        np.array([identities[identity_of(a)] for a, _, _, _ in pairs], dtype=np.int64),
        name,
    )


def _lfw_image(root: Path, name: str, number: str) -> str:
    return str(root / "images_deepfunneled" / name / f"{name}_{int(number):04d}.jpg")


def read_lfw_pairs(pairs_file: str | Path, image_root: str | Path | None = None) -> Protocol:
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
            pairs.append((_lfw_image(root, name, a), _lfw_image(root, name, b), True, fold))
        elif len(fields) == 4:
            name1, a, name2, b = fields
            pairs.append((_lfw_image(root, name1, a), _lfw_image(root, name2, b), False, fold))
        else:
            raise ValueError(f"{pairs_file}: line {index + 2} is not an LFW pair: {' '.join(fields)}")
    return _build(pairs, f"LFW pairs ({pairs_file.name})")


def read_pairs_csv(csv_file: str | Path) -> Protocol:
    """A CSV with columns path1, path2, mated (1/0, true/false) and optionally fold;
    relative paths are relative to the CSV's folder."""
    csv_file = Path(csv_file)
    truth = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    pairs = []
    with open(csv_file, newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                a, b = (str(p if (p := Path(row[c])).is_absolute() else csv_file.parent / p) for c in ("path1", "path2"))
                pairs.append((a, b, truth[row["mated"].strip().lower()], int(row.get("fold") or 0)))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{csv_file}: line {line} needs path1, path2, mated (1/0) and an optional integer fold") from exc
    return _build(pairs, f"pairs CSV ({csv_file.name})")


def all_pairs(images: list[str], name: str) -> Protocol:
    """Every unordered pair among ``images``, mated when both share an identity."""
    n = len(images)
    first, second = np.triu_indices(n, k=1)
    identities = {ident: i for i, ident in enumerate(dict.fromkeys(identity_of(p) for p in images))}
    labels = np.array([identities[identity_of(p)] for p in images], dtype=np.int64)
    return Protocol(list(images), first.astype(np.int64), second.astype(np.int64), labels[first] == labels[second], np.zeros(first.size, np.int64), labels[first], name)


def folder_all_pairs(folder: str | Path) -> Protocol:
    """All pairs among the images of a folder with one sub-folder per identity."""
    folder = Path(folder)
    images = sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no images under {folder}")
    return all_pairs(images, f"all pairs in {folder.name}")


def first_images(protocol: Protocol, count: int) -> Protocol:
    """The protocol restricted to its first ``count`` images and the pairs among them."""
    keep = (protocol.first < count) & (protocol.second < count)
    images = protocol.images[:count]
    name = f"{protocol.name}, first {len(images)} images"
    return Protocol(images, protocol.first[keep], protocol.second[keep], protocol.mated[keep], protocol.fold[keep], protocol.group[keep], name)


def load_protocol(spec: str, everything: bool = False, max_images: int | None = None) -> Protocol:
    """A protocol from a path: a folder (all pairs), a .csv, or an LFW pairs .txt; with
    ``everything``, all pairs among the images the protocol names; with ``max_images``,
    only the first images and the pairs among them."""
    path = Path(spec)
    if path.is_dir():
        protocol = folder_all_pairs(path)
    else:
        protocol = read_pairs_csv(path) if path.suffix.lower() == ".csv" else read_lfw_pairs(path)
        if everything:
            protocol = all_pairs(protocol.images, f"all pairs among the images of {path.name}")
    return first_images(protocol, max_images) if max_images else protocol
