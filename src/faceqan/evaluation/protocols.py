"""Pair protocols: which items are compared, whether each pair is mated, and who is who.

A protocol is a list of compared items (image paths; for template protocols such as IJB-C,
template names whose images are in ``members``), index arrays of pairs into it, each pair's
mated flag and fold, and each item's identity. Pairs are grouped for bootstrap resampling
by the identity of their first item. Generic kinds here: LFW-style pairs.txt, a CSV
``path1,path2,mated[,fold][,id1,id2]``, every pair among the images of a folder of identity
sub-folders, every pair among the items of another protocol. The published data sets'
layouts are read in ``datasets.py``.

Identities come from the protocol file where it names them (LFW's names, a CSV's id1 / id2,
IJB-C's mated pairs) or from each image's path by a rule (``--identity-from``: parent,
grandparent or a regular expression). Before anything is computed, ``check_identities``
refuses a protocol whose mated flags contradict its identities.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..pipeline import IMAGE_SUFFIXES


class ProtocolError(ValueError):
    """A protocol that cannot be evaluated as given (the message says why and what to do)."""


@dataclass(frozen=True)
class Protocol:
    images: list[str]  # the compared items: image paths, or template names when ``members`` is set
    first: np.ndarray
    second: np.ndarray
    mated: np.ndarray
    fold: np.ndarray
    group: np.ndarray  # per pair: the identity of its first item (bootstrap unit)
    name: str = ""
    identity_rule: str = "folder name (parent)"
    identities: np.ndarray | None = None  # per item, an integer label (None: unknown beyond ``group``)
    members: list[list[str]] | None = None  # per item, its images (template protocols)
    landmarks: dict[str, np.ndarray] | None = None  # given 5-point landmarks per image path (no detection)

    def __len__(self) -> int:
        return int(self.first.size)

    def subset(self, keep: np.ndarray) -> Protocol:
        return replace(self, first=self.first[keep], second=self.second[keep], mated=self.mated[keep], fold=self.fold[keep], group=self.group[keep])

    def image_paths(self) -> list[str]:
        """Every image the protocol needs, once, in order of first use."""
        if self.members is None:
            return list(self.images)
        return list(dict.fromkeys(path for member in self.members for path in member))

    @property
    def identity_count(self) -> int:
        labels = self.identities if self.identities is not None else self.group
        return int(np.unique(labels).size)


IdentityRule = Callable[[str], str]


def identity_rule(spec: str = "parent") -> tuple[IdentityRule, str]:
    """An image's identity from its path: ``parent`` (the folder's name), ``grandparent``
    (its parent's; layouts like ``<id>/<pose>/<n>.jpg``) or a regular expression matched
    against the path, the first group (else the whole match) being the identity.
    Returns the rule and its description for results.md."""
    if spec == "parent":
        return (lambda path: Path(path).parent.name), "folder name (parent)"
    if spec == "grandparent":
        return (lambda path: Path(path).parent.parent.name), "the folder above the image's folder (grandparent)"
    try:
        pattern = re.compile(spec)
    except re.error as exc:
        raise ProtocolError(f"--identity-from wants parent, grandparent or a regular expression; {spec!r}: {exc}") from None

    def from_regex(path: str) -> str:
        match = pattern.search(path)
        if match is None:
            raise ProtocolError(f"--identity-from {spec!r} does not match {path}")
        return match.group(1) if pattern.groups else match.group(0)

    return from_regex, f"regular expression {spec!r} on the path"


def _labels(names: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return np.array([index[name] for name in names], dtype=np.int64)


def build(pairs: list[tuple[str, str, bool, int]], name: str, identity_of: dict[str, str] | IdentityRule, rule: str, **extra) -> Protocol:
    """A protocol from (item1, item2, mated, fold) tuples; identities from a mapping or a rule."""
    if not pairs:
        raise ProtocolError(f"{name}: no pairs")
    images = list(dict.fromkeys(p for a, b, _, _ in pairs for p in (a, b)))
    index = {path: i for i, path in enumerate(images)}
    lookup = identity_of.__getitem__ if isinstance(identity_of, dict) else identity_of
    identities = _labels([lookup(p) for p in images])
    first = np.array([index[a] for a, _, _, _ in pairs], dtype=np.int64)
    return Protocol(
        images, first, np.array([index[b] for _, b, _, _ in pairs], dtype=np.int64), np.array([m for _, _, m, _ in pairs], dtype=bool),
        np.array([f for _, _, _, f in pairs], dtype=np.int64), identities[first], name, rule, identities, **extra,
    )  # fmt: skip


def check_identities(protocol: Protocol) -> None:
    """Refuse a protocol whose mated flags contradict its identities, naming the first such pair."""
    if protocol.identities is None:
        return
    same = protocol.identities[protocol.first] == protocol.identities[protocol.second]
    wrong = np.flatnonzero(same != protocol.mated)
    if wrong.size:
        i = int(wrong[0])
        a, b = protocol.images[protocol.first[i]], protocol.images[protocol.second[i]]
        label = "mated" if protocol.mated[i] else "non-mated"
        kind = "two identities" if protocol.mated[i] else "one identity"
        raise ProtocolError(
            f"{protocol.name}: pair {i + 1} ({a}, {b}) is labelled {label} but its images are of {kind} by the identity rule "
            f"({protocol.identity_rule}); {wrong.size} of {len(protocol)} pairs disagree. Fix the labels, give id1,id2 columns, "
            "or choose the rule with --identity-from parent|grandparent|REGEX"
        )


def _lfw_image(root: Path, name: str, number: str) -> str:
    return str(root / name / f"{name}_{int(number):04d}.jpg")


def read_lfw_pairs(pairs_file: str | Path, image_root: str | Path | None = None, name: str | None = None) -> Protocol:
    """LFW's pairs.txt (View 2: '10 300' header, folds of mated then non-mated lines) or
    pairsDevTrain/DevTest.txt (View 1: a single count header, one fold). Images in
    ``image_root/<Name>/<Name>_NNNN.jpg`` (default: ``images_deepfunneled`` beside the file);
    identities are the names the file gives."""
    pairs_file = Path(pairs_file)
    root = Path(image_root) if image_root is not None else pairs_file.parent / "images_deepfunneled"
    lines = [line.split() for line in pairs_file.read_text().splitlines() if line.strip()]
    header, body = lines[0], lines[1:]
    per_fold = 2 * int(header[1]) if len(header) == 2 else len(body)
    pairs, identity = [], {}
    for index, fields in enumerate(body):
        fold = index // per_fold
        if len(fields) == 3:
            person, a, b = fields
            pair = (_lfw_image(root, person, a), _lfw_image(root, person, b), True, fold)
            identity.update({pair[0]: person, pair[1]: person})
        elif len(fields) == 4:
            person1, a, person2, b = fields
            pair = (_lfw_image(root, person1, a), _lfw_image(root, person2, b), False, fold)
            identity.update({pair[0]: person1, pair[1]: person2})
        else:
            raise ProtocolError(f"{pairs_file}: line {index + 2} is not an LFW pair: {' '.join(fields)}")
        pairs.append(pair)
    return build(pairs, name or f"LFW pairs ({pairs_file.name})", identity, "the names in the pairs file")


TRUTH = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def read_pairs_csv(csv_file: str | Path, rule: str = "parent") -> Protocol:
    """A CSV with columns path1, path2, mated (1/0, true/false), optionally fold and the
    identities id1, id2 (else the identity rule on each path); relative paths are relative
    to the CSV's folder."""
    csv_file = Path(csv_file)
    pairs, identity = [], {}
    with open(csv_file, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        with_ids = {"id1", "id2"} <= columns
        for line, row in enumerate(reader, start=2):
            try:
                a, b = (str(p if (p := Path(row[c])).is_absolute() else csv_file.parent / p) for c in ("path1", "path2"))
                pairs.append((a, b, TRUTH[row["mated"].strip().lower()], int(row.get("fold") or 0)))
            except (KeyError, ValueError, TypeError) as exc:
                raise ProtocolError(f"{csv_file}: line {line} needs path1, path2, mated (1/0) and an optional integer fold") from exc
            if with_ids:
                for path, key in ((a, "id1"), (b, "id2")):
                    if identity.setdefault(path, row[key]) != row[key]:
                        raise ProtocolError(f"{csv_file}: line {line} gives {path} the identity {row[key]!r}, an earlier line {identity[path]!r}")
    if with_ids:
        return build(pairs, f"pairs CSV ({csv_file.name})", identity, "the id1 and id2 columns of the CSV")
    function, description = identity_rule(rule)
    return build(pairs, f"pairs CSV ({csv_file.name})", function, description)


def all_pairs(protocol: Protocol, name: str) -> Protocol:
    """Every unordered pair among a protocol's items, mated when both share an identity."""
    if protocol.identities is None:
        raise ProtocolError(f"{protocol.name}: its items have no identities, so all pairs cannot be labelled")
    first, second = np.triu_indices(len(protocol.images), k=1)
    labels = protocol.identities
    return replace(
        protocol, first=first.astype(np.int64), second=second.astype(np.int64), mated=labels[first] == labels[second],
        fold=np.zeros(first.size, np.int64), group=labels[first], name=name,
    )  # fmt: skip


def folder_all_pairs(folder: str | Path, rule: str = "parent") -> Protocol:
    """All pairs among the images of a folder with one sub-folder per identity (or any
    layout, with another identity rule)."""
    folder = Path(folder)
    images = sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ProtocolError(f"no images under {folder}")
    if rule == "parent":
        _check_parent_names_are_identities(images, folder)
    return paths_all_pairs(images, f"all pairs in {folder.name}", rule)


def _check_parent_names_are_identities(images: list[str], folder: Path) -> None:
    """Refuse a layout whose image folders repeat their names under different folders (such as
    CFP's ``<id>/frontal/``): there the folder name is a pose or a session, not an identity."""
    seen: dict[str, str] = {}
    for path in images:
        parent = Path(path).parent
        other = seen.setdefault(parent.name, str(parent.parent))
        if other != str(parent.parent):
            raise ProtocolError(
                f"{folder}: the image folder name {parent.name!r} appears under {other} and {parent.parent}, so it does not name "
                "an identity; say where identities are with --identity-from grandparent (layouts like <id>/<pose>/<n>.jpg) or a "
                "regular expression on the path"
            )


def paths_all_pairs(images: list[str], name: str, rule: str = "parent") -> Protocol:
    """Every pair among ``images``, identities by the rule."""
    function, description = identity_rule(rule)
    empty = np.zeros(0, np.int64)
    items = Protocol(list(images), empty, empty, np.zeros(0, bool), empty, empty, name, description, _labels([function(p) for p in images]))
    return all_pairs(items, name)


def first_images(protocol: Protocol, count: int) -> Protocol:
    """The protocol restricted to its first ``count`` items and the pairs among them."""
    keep = (protocol.first < count) & (protocol.second < count)
    kept = replace(protocol, images=protocol.images[:count], name=f"{protocol.name}, first {min(count, len(protocol.images))} items")
    kept = replace(kept, identities=None if protocol.identities is None else protocol.identities[:count])
    kept = replace(kept, members=None if protocol.members is None else protocol.members[:count])
    return kept.subset(keep)
