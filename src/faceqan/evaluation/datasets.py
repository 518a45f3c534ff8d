"""The FIQA papers' data sets, read as they ship, and ``load_protocol`` that picks the reader.

| kind | layout (under ROOT) |
|---|---|
| lfw | a pairs file (pairs.txt, pairsDevTrain.txt ...) with ``images_deepfunneled/`` beside it |
| cfp-fp, cfp-ff | ``Protocol/Pair_list_F.txt``, ``Pair_list_P.txt`` ("index path"), ``Protocol/Split/{FP,FF}/01..10/{same,diff}.txt`` ("a,b") |
| xqlfw | ``xqlfw_pairs.txt`` (LFW's format) and ``xqlfw_aligned_112/<Name>/<Name>_NNNN.jpg`` |
| calfw, cplfw | ``pairs_CALFW.txt`` / ``pairs_CPLFW.txt`` (two lines per pair, "file label", label 0 on non-mated pairs) and the images folder |
| ijbc | insightface's IJB-C 1:1 layout: ``meta/ijbc_face_tid_mid.txt``, ``meta/ijbc_template_pair_label.txt``, ``meta/ijbc_name_5pts_score.txt``, ``loose_crop/`` |
| csv | ``path1,path2,mated[,fold][,id1,id2]`` |
| folder | one sub-folder per identity: every pair among its images |
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from .protocols import Protocol, ProtocolError, all_pairs, build, first_images, folder_all_pairs, read_lfw_pairs, read_pairs_csv

PROTOCOL_KINDS = ("auto", "lfw", "csv", "folder", "cfp-fp", "cfp-ff", "xqlfw", "calfw", "cplfw", "ijbc")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise ProtocolError(f"{path} not found: {what}")
    return path


def read_cfp(root: str | Path, kind: str = "cfp-fp") -> Protocol:
    """CFP (Sengupta et al., WACV 2016): frontal-frontal (cfp-ff) or frontal-profile (cfp-fp)
    pairs of ``Protocol/Split``, 10 folds of 350 mated and 350 non-mated pairs; identities
    from ``Data/Images/<id>/<frontal|profile>/<n>.jpg`` (the folder above the pose folder)."""
    root = Path(root)
    protocol_dir = _need(root / "Protocol", "CFP_ROOT must hold Protocol/ and Data/ as the data set ships")

    def image_list(name: str) -> dict[str, str]:
        listing = _need(protocol_dir / name, "CFP's list of images")
        entries = {}
        for line in listing.read_text().splitlines():
            if line.strip():
                index, path = line.split(maxsplit=1)
                entries[index] = str((protocol_dir / path.strip()).resolve())
        return entries

    frontal = image_list("Pair_list_F.txt")
    second = frontal if kind == "cfp-ff" else image_list("Pair_list_P.txt")
    split = _need(protocol_dir / "Split" / kind.split("-")[1].upper(), "CFP's Split folders")
    pairs = []
    for fold, folder in enumerate(sorted(p for p in split.iterdir() if p.is_dir())):
        for file, mated in (("same.txt", True), ("diff.txt", False)):
            for line in _need(folder / file, "a CFP split file").read_text().splitlines():
                if line.strip():
                    a, b = (v.strip() for v in line.split(","))
                    pairs.append((frontal[a], second[b], mated, fold))
    identity = {path: Path(path).parent.parent.name for pair in pairs for path in pair[:2]}
    return build(pairs, f"CFP {kind[4:].upper()} ({root.name})", identity, "Data/Images/<id>/ folder of each image")


def read_xqlfw(root: str | Path) -> Protocol:
    """XQLFW (Knoche et al., FG 2021): LFW's pair format in ``xqlfw_pairs.txt``, images in
    ``xqlfw_aligned_112/``."""
    root = Path(root)
    pairs_file = _need(root / "xqlfw_pairs.txt", "XQLFW_ROOT must hold xqlfw_pairs.txt and xqlfw_aligned_112/")
    return read_lfw_pairs(pairs_file, _need(root / "xqlfw_aligned_112", "XQLFW's image folder"), f"XQLFW ({root.name})")


LFW_FILE_NAME = re.compile(r"^(.+)_\d+\.\w+$")
CROSS_LFW_IMAGE_FOLDERS = ("aligned images", "images&landmarks/images", "images", "aligned_images")


def read_cross_lfw(root: str | Path, kind: str) -> Protocol:
    """CALFW (cross-age) or CPLFW (cross-pose): ``pairs_CALFW.txt`` / ``pairs_CPLFW.txt``,
    two lines per pair ("file label"; label 0 on both lines of a non-mated pair), 10 folds of
    600 pairs in file order; identities from the file names (``Name_NNNN.jpg``)."""
    root = Path(root)
    label = kind.upper()
    pairs_file = _need(root / f"pairs_{label}.txt", f"{kind.upper()}_ROOT must hold pairs_{label}.txt and the images")
    images = next((root / name for name in CROSS_LFW_IMAGE_FOLDERS if (root / name).is_dir()), None)
    if images is None:
        raise ProtocolError(f"{root}: no image folder (looked for {', '.join(CROSS_LFW_IMAGE_FOLDERS)})")
    lines = [line.split() for line in pairs_file.read_text().splitlines() if line.strip()]
    if len(lines) % 2:
        raise ProtocolError(f"{pairs_file}: an odd number of lines ({len(lines)}); each pair is two lines")
    pairs, identity = [], {}
    for i in range(0, len(lines), 2):
        (a, label_a), (b, label_b) = lines[i][:2], lines[i + 1][:2]
        if (label_a == "0") != (label_b == "0"):
            raise ProtocolError(f"{pairs_file}: lines {i + 1}-{i + 2} give one image label 0 and the other not")
        pair = (str(images / a), str(images / b), label_a != "0", (i // 2) // 600)
        for name, path in ((a, pair[0]), (b, pair[1])):
            match = LFW_FILE_NAME.match(name)
            if match is None:
                raise ProtocolError(f"{pairs_file}: {name} is not named <Name>_<number>.<ext>")
            identity[path] = match.group(1)
        pairs.append(pair)
    return build(pairs, f"{kind.upper()} ({root.name})", identity, "the file names (<Name>_<number>)")


def read_ijbc(root: str | Path) -> Protocol:
    """IJB-C 1:1 verification in insightface's evaluation layout. Items are templates: a
    template's embedding is the mean of its images' normalised embeddings and its quality the
    mean of its images' qualities. Images are aligned with the landmarks of
    ``ijbc_name_5pts_score.txt`` (no detection). The meta files name no subjects, so identities
    are the connected components of the mated pairs."""
    root = Path(root)
    meta = _need(root / "meta", "IJBC_ROOT must hold meta/ and loose_crop/ (insightface's IJB-C layout)")
    crops = _need(root / "loose_crop", "IJB-C's loose_crop image folder")
    members: dict[str, list[str]] = {}
    for line in _need(meta / "ijbc_face_tid_mid.txt", "IJB-C's image-template list").read_text().splitlines():
        if line.strip():
            name, template = line.split()[:2]
            members.setdefault(template, []).append(str(crops / name))
    landmarks = {}
    for line in _need(meta / "ijbc_name_5pts_score.txt", "IJB-C's 5-point landmarks").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 11:
            landmarks[str(crops / fields[0])] = np.array(fields[1:11], float).reshape(5, 2)
    pairs = []
    for number, line in enumerate(_need(meta / "ijbc_template_pair_label.txt", "IJB-C's template pairs").read_text().splitlines(), 1):
        if line.strip():
            t1, t2, label = line.split()[:3]
            for template in (t1, t2):
                if template not in members:
                    raise ProtocolError(f"ijbc_template_pair_label.txt line {number}: template {template} has no images in ijbc_face_tid_mid.txt")
            pairs.append((t1, t2, label == "1", 0))
    missing = [path for paths in members.values() for path in paths if path not in landmarks]
    if missing:
        raise ProtocolError(f"{len(missing)} IJB-C images have no landmarks in ijbc_name_5pts_score.txt, e.g. {missing[0]}")
    identity = _mated_components([(a, b) for a, b, mated, _ in pairs if mated])
    protocol = build(pairs, f"IJB-C 1:1 ({root.name})", lambda t: identity.get(t, t), "connected components of the mated template pairs")
    return replace(protocol, members=[members[t] for t in protocol.images], landmarks=landmarks)


def _mated_components(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Union-find: each node of a mated pair -> a representative of its component."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    return {node: find(node) for node in list(parent)}


def detect_kind(path: Path) -> str:
    """The protocol kind of a path, from what it holds; asks for --protocol where two fit."""
    if path.is_file():
        name = path.name.lower()
        if name == "pairs_calfw.txt":
            return "calfw"
        if name == "pairs_cplfw.txt":
            return "cplfw"
        return "csv" if path.suffix.lower() == ".csv" else "lfw"
    if not path.is_dir():
        raise ProtocolError(f"protocol not found: {path}")
    if (path / "Protocol" / "Split").is_dir():
        raise ProtocolError(f"{path} is a CFP folder: choose --protocol cfp-fp (frontal-profile) or cfp-ff (frontal-frontal)")
    for marker, kind in (("meta/ijbc_template_pair_label.txt", "ijbc"), ("xqlfw_pairs.txt", "xqlfw"), ("pairs_CALFW.txt", "calfw"), ("pairs_CPLFW.txt", "cplfw")):
        if (path / marker).exists():
            return kind
    return "folder"


def load_protocol(spec: str, everything: bool = False, max_images: int | None = None, kind: str = "auto", identity_from: str | None = None) -> Protocol:
    """A protocol from a path (``kind`` auto: read from what the path holds); with ``everything``,
    all pairs among the protocol's items; with ``max_images``, only its first items and the pairs
    among them. ``identity_from`` (parent, grandparent or a regular expression) sets identities
    from image paths where the protocol does not name them (CSV without id1,id2; folders)."""
    if kind not in PROTOCOL_KINDS:
        raise ProtocolError(f"unknown protocol kind {kind!r}; choose one of {', '.join(PROTOCOL_KINDS)}")
    path = Path(spec)
    kind = detect_kind(path) if kind == "auto" else kind
    names_identities = kind not in ("csv", "folder")
    if identity_from is not None and names_identities:
        raise ProtocolError(f"--identity-from applies to CSV and folder protocols; {kind} names its identities itself")
    readers = {
        "lfw": lambda: read_lfw_pairs(path),
        "csv": lambda: read_pairs_csv(path, identity_from or "parent"),
        "folder": lambda: folder_all_pairs(path, identity_from or "parent"),
        "cfp-fp": lambda: read_cfp(path, "cfp-fp"),
        "cfp-ff": lambda: read_cfp(path, "cfp-ff"),
        "xqlfw": lambda: read_xqlfw(path),
        "calfw": lambda: read_cross_lfw(path.parent if path.is_file() else path, "calfw"),
        "cplfw": lambda: read_cross_lfw(path.parent if path.is_file() else path, "cplfw"),
        "ijbc": lambda: read_ijbc(path),
    }
    protocol = readers[kind]()
    if everything and kind != "folder":
        protocol = all_pairs(protocol, f"all pairs among the items of {protocol.name}")
    return first_images(protocol, max_images) if max_images else protocol
