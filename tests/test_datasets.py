"""The data sets of the FIQA papers, read as they ship: each reader on a miniature copy of its
layout built from LFW images, identities checked, and protocols that cannot make an ERC refused."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from faceqan.cli import main
from faceqan.evaluation.datasets import load_protocol
from faceqan.evaluation.protocols import ProtocolError, check_identities

QUICK = ["--bootstrap", "3", "--random-seeds", "2", "--quiet"]


@pytest.fixture(scope="module")
def people(lfw_root) -> dict[str, list[Path]]:
    """Six LFW people with two or more images each: name -> their first two images."""
    found = {}
    for folder in sorted((lfw_root / "images_deepfunneled").iterdir()):
        files = sorted(folder.glob("*.jpg"))
        if len(files) >= 2:
            found[folder.name] = files[:2]
        if len(found) == 6:
            return found
    pytest.skip("LFW holds fewer than six people with two images")


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_cfp_frontal_profile_and_frontal_frontal(tmp_path, people):
    root = tmp_path / "cfp-dataset"
    frontal, profile = [], []
    for i, (a, b) in enumerate(people.values(), 1):
        for pose, source, listing in (("frontal", a, frontal), ("profile", b, profile)):
            target = root / "Data" / "Images" / f"{i:03d}" / pose / "01.jpg"
            target.parent.mkdir(parents=True)
            shutil.copy(source, target)
            listing.append(f"{len(listing) + 1} ../Data/Images/{i:03d}/{pose}/01.jpg")
    _lines(root / "Protocol" / "Pair_list_F.txt", frontal)
    _lines(root / "Protocol" / "Pair_list_P.txt", profile)
    for fold in ("01", "02"):
        _lines(root / "Protocol" / "Split" / "FP" / fold / "same.txt", ["1,1", "2,2", "3,3"] if fold == "01" else ["4,4", "5,5", "6,6"])
        _lines(root / "Protocol" / "Split" / "FP" / fold / "diff.txt", ["1,2", "3,4"] if fold == "01" else ["5,6", "6,1"])
        _lines(root / "Protocol" / "Split" / "FF" / fold / "same.txt", [])
        _lines(root / "Protocol" / "Split" / "FF" / fold / "diff.txt", ["1,2"] if fold == "01" else ["3,4"])
    fp = load_protocol(str(root), kind="cfp-fp")
    assert len(fp) == 10 and fp.mated.sum() == 6 and set(fp.fold.tolist()) == {0, 1}
    assert fp.identity_count == 6 and "/profile/" in fp.images[fp.second[0]]
    check_identities(fp)
    ff = load_protocol(str(root), kind="cfp-ff")
    assert len(ff) == 2 and not ff.mated.any() and all("/frontal/" in p for p in ff.images)
    with pytest.raises(ProtocolError, match="cfp-fp .* or cfp-ff"):
        load_protocol(str(root))
    # The layout that fooled the folder rule: <id>/<pose>/<n>.jpg is refused, and read right with grandparent.
    with pytest.raises(ProtocolError, match="--identity-from grandparent"):
        load_protocol(str(root / "Data" / "Images"))
    everything = load_protocol(str(root / "Data" / "Images"), identity_from="grandparent")
    assert everything.identity_count == 6 and everything.mated.sum() == 6 and len(everything) == 66


def test_a_csv_whose_labels_contradict_the_identities_is_refused_before_any_work(tmp_path, people, capsys):
    (a1, a2), (b1, _) = list(people.values())[:2]
    csv_file = tmp_path / "pairs.csv"
    _lines(csv_file, ["path1,path2,mated", f"{a1},{a2},1", f"{a1},{b1},1"])
    assert main(["evaluate", str(csv_file), "--method", "flip", "--out", str(tmp_path / "e"), "--cache", str(tmp_path / "c"), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "pair 2" in err and "labelled mated but its images are of two identities" in err and a1.name in err
    assert not (tmp_path / "c").exists()
    # id1,id2 columns name the identities; here they agree with the labels.
    _lines(csv_file, ["path1,path2,mated,id1,id2", f"{a1},{a2},1,x,x", f"{a1},{b1},0,x,y"])
    protocol = load_protocol(str(csv_file))
    check_identities(protocol)
    assert protocol.identity_rule == "the id1 and id2 columns of the CSV" and protocol.identity_count == 2
    # A regular expression reads identities from the file names.
    _lines(csv_file, ["path1,path2,mated", f"{a1},{a2},1", f"{a1},{b1},0"])
    by_name = load_protocol(str(csv_file), identity_from=r"([^/]+)_\d{4}\.jpg$")
    check_identities(by_name)
    assert by_name.identity_count == 2


def test_xqlfw_calfw_and_cplfw_pair_lists(tmp_path, people):
    names = list(people)
    xq = tmp_path / "xqlfw"
    for name, files in people.items():
        (xq / "xqlfw_aligned_112" / name).mkdir(parents=True)
        for f in files:
            shutil.copy(f, xq / "xqlfw_aligned_112" / name / f.name)
    number = [int(people[n][0].stem[-4:]) for n in names]
    second = [int(people[n][1].stem[-4:]) for n in names]
    _lines(xq / "xqlfw_pairs.txt", ["1 3", *(f"{n} {a} {b}" for n, a, b in zip(names[:3], number, second)),
                                    *(f"{names[i]} {number[i]} {names[i + 3]} {number[i + 3]}" for i in range(3))])  # fmt: skip
    protocol = load_protocol(str(xq))
    assert protocol.name.startswith("XQLFW") and len(protocol) == 6 and protocol.mated.tolist() == [True] * 3 + [False] * 3
    assert all(Path(p).exists() for p in protocol.images)
    check_identities(protocol)

    for kind, folder in (("calfw", "aligned images"), ("cplfw", "images")):
        root = tmp_path / kind
        (root / folder).mkdir(parents=True)
        for files in people.values():
            for f in files:
                shutil.copy(f, root / folder / f.name)
        lines = []
        for i, name in enumerate(names[:3]):
            lines += [f"{people[name][0].name} {i + 1}", f"{people[name][1].name} {i + 1}"]
        for i in range(3):
            lines += [f"{people[names[i]][0].name} 0", f"{people[names[i + 3]][0].name} 0"]
        _lines(root / f"pairs_{kind.upper()}.txt", lines)
        protocol = load_protocol(str(root))
        assert protocol.name.startswith(kind.upper()) and protocol.mated.tolist() == [True] * 3 + [False] * 3
        assert protocol.identity_count == 6 and all(Path(p).exists() for p in protocol.images)
        check_identities(protocol)


@pytest.fixture(scope="module")
def ijbc(tmp_path_factory, people):
    """Insightface's IJB-C layout: two templates of two images per person, landmarks from YuNet."""
    from faceqan.faces.decode import decode_image
    from faceqan.faces.detect import YuNetDetector

    root = tmp_path_factory.mktemp("IJBC")
    (root / "loose_crop").mkdir()
    detector = YuNetDetector(refine_landmarks=True)
    tid_mid, points, pairs = [], [], []
    image_number = 0
    for p, files in enumerate(list(people.values())[:4]):
        for t in range(2):
            template = 10 * p + t + 1
            for f in (files[t], files[1 - t]):
                image_number += 1
                name = f"{image_number}.jpg"
                shutil.copy(f, root / "loose_crop" / name)
                tid_mid.append(f"{name} {template} {100 + template}")
                landmarks = detector.detect(decode_image(str(f)))[0].landmarks
                points.append(f"{name} " + " ".join(f"{v:.3f}" for v in landmarks.ravel()) + " 0.99")
        pairs.append(f"{10 * p + 1} {10 * p + 2} 1")
    for p in range(4):
        for q in range(p + 1, 4):
            pairs += [f"{10 * p + 1} {10 * q + 1} 0", f"{10 * p + 2} {10 * q + 2} 0"]
    _lines(root / "meta" / "ijbc_face_tid_mid.txt", tid_mid)
    _lines(root / "meta" / "ijbc_name_5pts_score.txt", points)
    _lines(root / "meta" / "ijbc_template_pair_label.txt", pairs)
    return root


def test_ijbc_templates_are_read_with_their_images_and_landmarks(ijbc):
    protocol = load_protocol(str(ijbc))
    assert protocol.name.startswith("IJB-C") and len(protocol.images) == 8 and len(protocol) == 16
    assert protocol.mated.sum() == 4 and protocol.identity_count == 4
    assert all(len(m) == 2 for m in protocol.members) and len(protocol.image_paths()) == 16
    assert all(points.shape == (5, 2) for points in protocol.landmarks.values())
    check_identities(protocol)


def test_ijbc_evaluates_templates_end_to_end(ijbc, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", str(ijbc), "--method", "flip", "--out", str(out), "--cache", str(tmp_path / "c"), "--fmr", "0.1", *QUICK]
    assert main(args) == 0
    results = (out / "results.md").read_text()
    assert "8 templates" in results and "Templates: 16 images; a template's embedding is the mean" in results
    assert "Identities: 4 (connected components of the mated template pairs)" in results and "landmarks: given" in results
    assert "nan" not in results.lower()
    rows = (out / "qualities.csv").read_text().splitlines()
    assert len(rows) == 9 and all(row.split(",")[1] for row in rows[1:])  # a quality per template
    # Its images are aligned with the landmarks it ships: --aligned contradicts that, one line, exit 2.
    capsys.readouterr()
    assert main([*args, "--aligned"]) == 2
    assert "comes with landmarks to align its images; --aligned is for chips already aligned" in capsys.readouterr().err


def test_template_values_are_means_over_their_images():
    from faceqan.evaluation.evaluate import item_embeddings, item_values
    from faceqan.evaluation.protocols import Protocol

    protocol = Protocol(["t1", "t2"], np.array([0]), np.array([1]), np.array([False]), np.array([0]), np.array([0]),
                        members=[["a", "b"], ["c"]])  # fmt: skip
    embeddings = item_embeddings(protocol, {"a": [3.0, 4.0], "b": [0.0, 2.0], "c": None})
    np.testing.assert_allclose(embeddings["t1"], [(0.6 + 0.0) / 2, (0.8 + 1.0) / 2])
    assert embeddings["t2"] is None
    values = item_values(protocol, ["a", "b", "c"], np.array([0.2, np.nan, 0.5]))
    np.testing.assert_allclose(values, [0.2, 0.5])


def test_a_protocol_without_enough_non_mated_pairs_is_refused_with_the_counts(lfw_root, tmp_path, capsys):
    args = [str(lfw_root / "pairsDevTest.txt"), "--max-images", "120", "--method", "flip", "--out", str(tmp_path / "e"), "--cache", str(tmp_path / "c")]
    assert main(["evaluate", *args, *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert "mated and 0 non-mated pairs" in err and "--all-pairs" in err and err.count("\n") == 0
    assert not (tmp_path / "c").exists()
