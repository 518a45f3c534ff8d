"""FROQ: layers chosen on pseudo-labels, one forward pass, files that refuse other weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import faceqan
from faceqan.cli import EXIT_OK, main
from faceqan.froq.calibrate import choose, degraded
from faceqan.froq.layers import FroqLayersError, builtin_layers
from faceqan.methods import create_method
from faceqan.student.features import stage_log_norms
from helpers import write_face_folder


def test_the_greedy_choice_takes_helpful_stages_with_their_signs_and_stops():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=2000)
    norms = rng.normal(size=(2000, 6))
    norms[:, 2] = labels + 0.8 * rng.normal(size=2000)  # tracks the labels
    norms[:, 4] = -labels + 0.8 * rng.normal(size=2000)  # tracks them the other way round
    chosen, signs, trace = choose(norms, labels, max_layers=4)
    assert sorted(zip(chosen[:2], signs[:2])) == [(2, 1), (4, -1)]
    assert len(chosen) <= 3 and trace == sorted(trace)  # noise stages add (almost) nothing: the choice stops


def test_degraded_copies_are_seeded_noisy_and_partly_grey():
    images = torch.zeros(2, 3, 20, 20)
    first, again = degraded(images, torch.Generator().manual_seed(1)), degraded(images, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and first.std() > 0.05 and (first == 0).all(dim=1).sum() >= 2 * 6 * 6


@pytest.fixture(scope="module")
def small_layers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("froq")
    faces = write_face_folder(folder / "faces", count=4)
    out = folder / "layers.json"
    assert main(["calibrate-froq", *map(str, faces), "--model", "dlib", "-o", str(out), "--quiet", "--max-layers", "2"]) == EXIT_OK
    return out


@pytest.mark.slow
def test_froq_is_the_mean_of_the_chosen_standardised_log_norms(small_layers):
    model = faceqan.create_model("dlib")
    method = create_method("froq", model, froq_layers=str(small_layers))
    layers = json.loads(small_layers.read_text())
    images = torch.rand(3, 3, 150, 150) * 2 - 1
    norms, _ = stage_log_norms(model, images)
    expected = np.mean([sign * (norms[:, s].double().numpy() - mean) / std for s, sign, mean, std in zip(layers["chosen"], layers["signs"], layers["mean"], layers["std"])], axis=0)
    assert method(images)["quality"].numpy() == pytest.approx(expected, abs=1e-9)
    assert method.settings()["froq_layers_sha256"] and len(layers["chosen"]) >= 1
    assert set(method.scale_settings()) == {"model_sha256", "method", "froq_layers_sha256"}


@pytest.mark.slow
def test_a_layers_file_for_other_weights_or_format_is_refused(small_layers, tmp_path):
    model = faceqan.create_model("dlib")
    data = json.loads(small_layers.read_text())
    (tmp_path / "other.json").write_text(json.dumps({**data, "model_sha256": "0" * 64}))
    with pytest.raises(FroqLayersError, match="other weights"):
        create_method("froq", model, froq_layers=str(tmp_path / "other.json"))
    (tmp_path / "old.json").write_text(json.dumps({**data, "format": 0}))
    with pytest.raises(FroqLayersError, match="format 1"):
        create_method("froq", model, froq_layers=str(tmp_path / "old.json"))


@pytest.mark.parametrize("model_name", ["dlib", "sface"])
def test_froq_layers_ship_for_the_built_in_models(model_name):
    path = builtin_layers(model_name)
    assert path is not None, f"no FROQ layers shipped for {model_name}: run faceqan calibrate-froq on LFW View 1's training images"
    data = json.loads(path.read_text())
    assert data["report"]["faces"] > 3000 and 1 <= len(data["chosen"]) <= 4 and data["report"]["spearman_after_each_layer"][-1] > 0.2


@pytest.mark.slow
def test_froq_ranks_blurred_copies_of_lfw_faces_below_the_originals(lfw_root, tmp_path):
    import cv2

    originals = sorted((lfw_root / "images_deepfunneled").glob("*/*.jpg"))[:12]
    blurred = []
    for path in originals:
        target = tmp_path / f"{path.stem}_blur.png"
        cv2.imwrite(str(target), cv2.GaussianBlur(cv2.imread(str(path)), (0, 0), 4.0))
        blurred.append(target)
    model = faceqan.create_model("dlib")
    rows = faceqan.score_paths([*originals, *blurred], model, method="froq")
    quality = np.array([row["quality"] for row in rows], float)
    assert (quality[:12] > quality[12:]).mean() >= 0.9
