"""`faceqan evaluate` end to end on every protocol kind, with caching."""

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from faceqan.cli import EXIT_OK, main
from faceqan.evaluation.datasets import load_protocol
from faceqan.evaluation.protocols import read_lfw_pairs

from helpers import face_rgb

QUICK = ["--bootstrap", "5", "--random-seeds", "3", "--fmr", "0.1", "--quiet"]  # tiny protocols: 10+ non-mated pairs
FAST = ["--copies", "2", "--steps", "1", *QUICK]  # for runs with FaceQAN


@pytest.fixture(scope="module")
def identity_folder(tmp_path_factory):
    """Two 'identities' of real-face images, four degraded variants each."""
    root = tmp_path_factory.mktemp("ids")
    rgb = face_rgb()
    for ident, base in (("alice", rgb), ("bob", np.ascontiguousarray(rgb[:, ::-1]))):
        (root / ident).mkdir()
        for i, sigma in enumerate((0.5, 1.5, 3.0, 5.0)):
            Image.fromarray(cv2.GaussianBlur(base, (0, 0), sigma)).save(root / ident / f"{ident}_{i}.jpg")
    return root


def _table(out):
    with open(out / "results.csv", newline="") as handle:
        return {row["method"]: row for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_folder_all_pairs_with_on_the_fly_methods_and_cache(identity_folder, tmp_path):
    out, cache = tmp_path / "eval", tmp_path / "cache"
    args = [str(identity_folder), "--method", "faceqan", "--method", "flip", "--method", "sharpness", "--method", "serfiq", "--out", str(out), "--cache", str(cache), *FAST]
    assert main(["evaluate", *args]) == EXIT_OK
    table = _table(out)
    for method in ("faceqan", "faceqan q_adv (no symmetry)", "s_f (from faceqan)", "flip", "sharpness", "serfiq"):
        assert float(table[method]["erc_auc@20"]) >= 0
    assert any(name.startswith("random") for name in table)
    assert (out / "erc.png").stat().st_size > 1000 and (out / "edc.png").stat().st_size > 1000
    with open(out / "qualities.csv", newline="") as handle:
        per_image = list(csv.DictReader(handle))
    assert len(per_image) == 8 and {"path", "faceqan", "s_f (from faceqan)", "flip", "sharpness", "serfiq"} <= set(per_image[0])
    assert all(0 < float(row["faceqan"]) <= 1 for row in per_image)
    assert "faceqan" in json.loads((out / "settings.json").read_text())["provenance"]
    # s_f from FaceQAN and the flip baseline are the same quantity, computed apart.
    assert all(float(row["s_f (from faceqan)"]) == pytest.approx(float(row["flip"]), abs=1e-4) for row in per_image)
    assert "28 pairs (12 mated, 16 non-mated)" in (out / "results.md").read_text()
    assert "| images rejected | faceqan threshold | FNMR faceqan |" in (out / "results.md").read_text()
    with open(out / "operating_points.csv", newline="") as handle:
        points = list(csv.DictReader(handle))
    assert {row["method"] for row in points} >= {"faceqan", "flip", "sharpness", "serfiq", "random (3 seeds)"}
    faceqan_points = [row for row in points if row["method"] == "faceqan"]
    assert [float(row["reject_rate"]) for row in faceqan_points] == [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3]
    assert float(faceqan_points[-1]["images_rejected"]) == pytest.approx(0.25)  # 2 of the 8 images (floor of 30 %)
    sizes = {p.name: p.stat().st_size for p in cache.glob("*.jsonl")}
    assert main(["evaluate", *args]) == EXIT_OK  # second run: everything from the cache
    assert {p.name: p.stat().st_size for p in cache.glob("*.jsonl")} == sizes
    assert _table(out)["faceqan"]["erc_auc@20"] == table["faceqan"]["erc_auc@20"]


def test_edc_threshold_from_a_starting_fnmr_on_the_command_line(identity_folder, tmp_path):
    out = tmp_path / "eval"
    args = [str(identity_folder), "--method", "sharpness", "--out", str(out), "--cache", str(tmp_path / "cache"), *QUICK]
    assert main(["evaluate", *args, "--edc-start-fnmr", "0.25"]) == EXIT_OK
    assert "EDC: threshold fixed at a starting FNMR of 0.25 (on all mated pairs)" in (out / "results.md").read_text()
    assert main(["evaluate", *args, "--edc-start-fnmr", "2"]) != EXIT_OK


def test_the_edc_columns_follow_the_edc_limit_in_the_csv_and_the_table(identity_folder, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", str(identity_folder), "--method", "sharpness", "--out", str(out), "--cache", str(tmp_path / "cache"), "--edc-limit", "0.3", *QUICK]) == EXIT_OK
    header = next(csv.reader(open(out / "results.csv")))
    assert "edc_pauc@30" in header and "edc_pauc@30-best" in header and not [c for c in header if c.startswith("edc_pauc@20")]
    markdown = (out / "results.md").read_text()
    assert "| edc_pauc@30 | edc_pauc@30-best |" in markdown and "edc_pauc@20" not in markdown and "pAUC x 1e3 to 0.3" in markdown


def test_csv_protocol_and_quality_from_a_score_file(identity_folder, tmp_path):
    images = sorted(identity_folder.rglob("*.jpg"))
    protocol = tmp_path / "pairs.csv"
    with open(protocol, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path1", "path2", "mated", "fold"])
        for a in images:
            for b in images:
                if str(a) < str(b):
                    writer.writerow([a, b, int(a.parent == b.parent), 0])
    scores = tmp_path / "scores.csv"
    assert main(["score", str(identity_folder), "-o", str(scores), "--copies", "2", "--steps", "1", "--quiet"]) == EXIT_OK
    out = tmp_path / "eval"
    assert main(["evaluate", str(protocol), "--quality-csv", f"fq={scores}", "--quality-csv", f"sf={scores}:flip_sim", "--method", "embedding_norm", "--out", str(out), "--cache", str(tmp_path / "c"), *QUICK]) == EXIT_OK
    table = _table(out)
    assert list(table)[:3] == ["fq", "sf", "embedding_norm"]  # score files first: paired intervals are against fq


def test_lfw_protocols(lfw_root):
    view2 = read_lfw_pairs(lfw_root / "pairs.txt")
    assert len(view2) == 6000 and view2.mated.sum() == 3000 and len(view2.images) == 7701
    assert set(np.unique(view2.fold)) == set(range(10))
    view1 = read_lfw_pairs(lfw_root / "pairsDevTrain.txt")
    assert len(view1) == 2200 and set(np.unique(view1.fold)) == {0}
    everything = load_protocol(str(lfw_root / "pairsDevTest.txt"), everything=True)
    n = len(everything.images)
    assert len(everything) == n * (n - 1) // 2 and everything.mated.sum() > 500


def test_comparison_scores_in_chunks_are_the_cosines_and_flag_missing_embeddings():
    from faceqan.evaluation.evaluate import comparison_scores
    from faceqan.evaluation.protocols import paths_all_pairs

    rng = np.random.default_rng(0)
    images = [f"/ids/{name}/{i}.jpg" for name in ("a", "b", "c") for i in range(3)]
    protocol = paths_all_pairs(images, "nine")
    vectors = rng.normal(size=(len(images), 4))
    embeddings = {path: list(vector) for path, vector in zip(images, vectors)}
    embeddings[images[4]] = None  # no face for the comparison model
    scores, valid = comparison_scores(protocol, embeddings, chunk=5)  # 36 pairs: 8 chunks
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = np.sum(unit[protocol.first] * unit[protocol.second], axis=1)
    np.testing.assert_array_equal(valid, (protocol.first != 4) & (protocol.second != 4))
    np.testing.assert_allclose(scores[valid], expected[valid])


def test_options_no_method_takes_and_model_options_are_refused_before_any_work(identity_folder, tmp_path, capsys):
    args = [str(identity_folder), "--out", str(tmp_path / "eval"), "--cache", str(tmp_path / "c"), *QUICK]
    assert main(["evaluate", *args, "--method", "flip", "--eps", "0.01"]) == 2
    assert "no method among flip takes the option(s) eps" in capsys.readouterr().err
    assert main(["evaluate", *args, "--method", "nonsense"]) == 2
    assert "unknown quality method 'nonsense'" in capsys.readouterr().err
    assert main(["evaluate", *args, "--method", "flip", "--model", "sface"]) == 2
    assert "--comparison-model and --quality-model" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_cached_values_are_keyed_on_the_faceqan_version_and_the_weights(tmp_path, monkeypatch, tiny_net):
    from faceqan.cache import ResultCache
    from faceqan.evaluation import run
    from faceqan.models.dlib import DLIB_SPEC
    from faceqan.models.spec import FaceModel

    model = FaceModel(tiny_net, DLIB_SPEC)

    def cache_file() -> str:
        return ResultCache(tmp_path, run._cache_setting("faceqan", "mine", model, "refined", {"eps": 0.01})).path.name

    first = cache_file()
    assert cache_file() == first
    monkeypatch.setattr(run, "__version__", "9.9.9")
    assert cache_file() != first
    monkeypatch.undo()
    with torch.no_grad():
        next(tiny_net.parameters()).add_(1.0)
    model._fingerprint = None  # weights changed in place: a new fingerprint
    assert cache_file() != first


@pytest.mark.slow
def test_model_files_and_their_options_reach_evaluate_and_the_results_name_them(identity_folder, tmp_path):
    from faceqan.models import create_model
    from faceqan.models.iresnet import iresnet

    torch.manual_seed(0)
    weights = tmp_path / "r18.pth"
    torch.save(iresnet("r18", 32).state_dict(), weights)
    out = tmp_path / "eval"
    args = ["evaluate", str(identity_folder), "--comparison-model", str(weights), "--arch", "r18", "--quality-model", "dlib",
            "--method", "flip", "--out", str(out), "--cache", str(tmp_path / "c"), *QUICK]  # fmt: skip
    assert main(args) == EXIT_OK
    results = (out / "results.md").read_text()
    sha = create_model(str(weights), arch="r18").fingerprint()
    assert f"Comparison model: {weights} (weights sha256 {sha[:12]})" in results
    assert f"quality model: dlib (weights sha256 {create_model('dlib').fingerprint()[:12]})" in results
    assert "Identities: 2 (folder name (parent))" in results
    settings = json.loads((out / "settings.json").read_text())
    assert settings["model_options"] == {"arch": "r18"} and settings["comparison_model_sha256"] == sha
    # Without --arch the state dict cannot be read: one line, exit 2.
    assert main([*args[:4], *args[6:]]) == 2


def test_aligned_chips_are_evaluated_without_detection(lfw_aligned_root, tmp_path, monkeypatch):
    """--aligned: LFW's 112x112 ArcFace-template chips straight into SFace; a detector would fail the run."""
    import faceqan.faces.prepare as prepare

    chips = lfw_aligned_root
    folder = tmp_path / "ids"
    for name in ("Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Al_Gore"):
        shutil.copytree(chips / name, folder / name)

    class NoDetector:
        def __init__(self, *args, **kwargs):
            raise AssertionError("--aligned must not detect")

    monkeypatch.setattr(prepare, "YuNetDetector", NoDetector)
    out = tmp_path / "eval"
    args = ["evaluate", str(folder), "--aligned", "--comparison-model", "sface", "--method", "flip", "--out", str(out), "--cache", str(tmp_path / "c"), *QUICK]
    assert main(args) == EXIT_OK
    results = (out / "results.md").read_text()
    assert "landmarks: none (aligned input)" in results and "; 0 pairs dropped" in results
    assert _table(out)["flip"]["erc_auc@20"] != ""
    assert "| none | - | 0.0000 |" in results  # well-aligned chips: SFace verifies every mated pair at FMR 0.1


def test_progress_bars_say_in_words_what_they_score_within_a_bounded_width():
    from faceqan.evaluation.evaluate import TITLE_WIDTH, progress_title

    assert progress_title(1753, ["faceqan", "faceqan-student", "froq", "flip"]) == "scoring 1,753 faces: faceqan, faceqan-student, froq, flip"
    long = progress_title(29_000_000, [f"method-{i}" for i in range(40)])
    assert len(long) == TITLE_WIDTH and long.startswith("scoring 29,000,000 faces: method-0, ") and long.endswith("...")


def test_several_methods_share_each_image_detection_and_each_computes_only_what_its_cache_lacks(identity_folder, tmp_path, capsys):
    from faceqan.cache import ResultCache
    from faceqan.evaluation.evaluate import cached_values, cached_values_of
    from faceqan.faces.prepare import FacePreparer
    from faceqan.methods import create_method
    from faceqan.models import create_model

    model = create_model("dlib")
    paths = [str(p) for p in sorted(identity_folder.rglob("*.jpg"))[:3]]
    prepared: list[str] = []

    class CountingPreparer(FacePreparer):
        def __call__(self, path):
            prepared.append(path)
            return super().__call__(path)

    preparer = CountingPreparer(model.spec, landmarks="refined")
    methods = [create_method("flip", model), create_method("sharpness", model)]
    caches = [ResultCache(tmp_path / "joint", {"method": m.name}) for m in methods]
    cached_values(paths[:1], preparer, methods[1], caches[1], 1, progress=False)  # sharpness already has one image
    prepared.clear()
    rows = cached_values_of(paths, preparer, list(zip(methods, caches)), 1, progress=True)
    bar = capsys.readouterr().err.strip().splitlines()[-1]
    assert "scoring 3 faces: flip, sharpness" in bar and "-" not in bar.split(":")[0] and max(len(line) for line in bar.split("\r")) <= 100
    assert sorted(prepared) == sorted(paths)  # each image once, for both methods
    alone = [cached_values(paths, preparer, m, ResultCache(tmp_path / "alone", {"method": m.name}), 1, progress=False) for m in methods]
    for together, single in zip(rows, alone):
        assert all(together[p]["status"] == "ok" for p in paths)
        assert [together[p]["quality"] for p in paths] == pytest.approx([single[p]["quality"] for p in paths], abs=1e-6)
    prepared.clear()
    assert cached_values_of(paths, preparer, list(zip(methods, caches)), 1, progress=False) == rows
    assert prepared == []  # everything cached: nothing detected again


def test_the_edc_columns_state_the_discard_limit_they_were_computed_to():
    from faceqan.evaluation.evaluate import edc_key

    assert (edc_key(0.2), edc_key(0.3), edc_key(0.05), edc_key(0.125)) == ("edc_pauc@20", "edc_pauc@30", "edc_pauc@5", "edc_pauc@12.5")
