"""The quality-method registry: every method through one interface, defaults from the model."""

import csv
import json

import numpy as np
import pytest
import torch

import faceqan
from faceqan.methods import QualityMethod, create_method, list_methods, method_options, register_method
from faceqan.models.dlib import DLIB_SPEC
from faceqan.models.spec import FaceModel


class LinearEmbedder(torch.nn.Module):
    """(N, 3, 16, 16) -> (N, 8), with a last nn.Linear for SER-FIQ."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 8))

    def forward(self, x):
        return self.body(x)


@pytest.fixture
def model():
    return FaceModel(LinearEmbedder().eval(), DLIB_SPEC)


@pytest.mark.parametrize("name", ["faceqan", "serfiq", "flip", "embedding_norm", "sharpness", "random"])
def test_every_method_gives_its_columns_one_value_per_image(model, tiny_images, name):
    method = create_method(name, model, **({"steps": 1, "copies": 2} if name == "faceqan" else {}))
    assert isinstance(method, QualityMethod) and method.name == name
    columns = method(tiny_images)
    assert list(columns) == [*method.columns, "quality_0_100"] == list(method.output_columns) and method.columns[0] == "quality"
    assert all(columns[c].shape == (5,) and columns[c].device.type == "cpu" and torch.isfinite(columns[c]).all() for c in method.columns)
    assert torch.isnan(columns["quality_0_100"]).all()  # no 0-100 scale for this model
    assert method.settings()["method"] == name
    # One image alone gets the value it gets in its batch.
    torch.testing.assert_close(method(tiny_images[2:3])["quality"], columns["quality"][2:3], rtol=1e-5, atol=1e-6)


def test_faceqan_defaults_come_from_the_model_spec_and_match_the_cli(model):
    method = create_method("faceqan", model)
    assert method.options() == {"eps": DLIB_SPEC.default_eps, "steps": 5, "copies": 10, "power": 5, "variant": "paper", "seed": 0}
    assert create_method("faceqan", model, eps=0.02, seed=None).options()["eps"] == 0.02  # None: left out


def test_unknown_names_and_options_are_refused_with_what_exists(model):
    with pytest.raises(ValueError, match="unknown quality method 'nope'; choose one of faceqan"):
        create_method("nope", model)
    with pytest.raises(ValueError, match=r"takes no option eps \(its options: passes, dropout, seed\)"):
        create_method("serfiq", model, eps=0.1)
    assert method_options("faceqan") == ["eps", "steps", "copies", "power", "variant", "seed"]


def test_serfiq_masks_do_not_depend_on_the_pixels(model, tiny_images):
    """Like FaceQAN's noise, SER-FIQ's dropout masks come from the seed alone."""
    method = create_method("serfiq", model, passes=8)
    nudged = tiny_images.clone()
    nudged[:, 0, 3, 3] += 1 / 127.5
    torch.testing.assert_close(method(nudged.clamp(-1, 1))["quality"], method(tiny_images)["quality"], rtol=0, atol=1e-3)
    other_seed = create_method("serfiq", model, passes=8, seed=1)(tiny_images)["quality"]
    assert not torch.equal(other_seed, method(tiny_images)["quality"])


def test_a_registered_method_is_available_everywhere(model, tiny_images):
    @register_method
    class Brightness(QualityMethod):
        name = "test-brightness"
        summary = "mean pixel value"

        def compute(self, images):
            return {"quality": images.mean(dim=(1, 2, 3))}

    try:
        assert "test-brightness" in faceqan.list_methods()
        values = create_method("test-brightness", model)(tiny_images)["quality"]
        torch.testing.assert_close(values, tiny_images.mean(dim=(1, 2, 3)))
    finally:
        from faceqan.methods import METHODS

        del METHODS["test-brightness"]
    assert "test-brightness" not in list_methods()


def test_the_api_defaults_are_the_clis(tmp_path):
    """score_paths with no options scores like `faceqan score` (the model's eps, not the paper's)."""
    from helpers import write_face_folder

    from faceqan.cli import main

    face = write_face_folder(tmp_path / "in", 1)[0]
    out = tmp_path / "out.csv"
    assert main(["score", str(face), "-o", str(out), "--copies", "2", "--steps", "1", "--quiet"]) == 0
    with open(out, newline="") as handle:
        cli_row = next(csv.DictReader(handle))
    model = faceqan.create_model("dlib")
    api_row = faceqan.score_paths([face], model, copies=2, steps=1)[0]
    assert api_row["quality"] == pytest.approx(float(cli_row["quality"]), abs=1e-6)
    settings = json.loads((tmp_path / "out.csv.settings.json").read_text())
    assert settings["eps"] == DLIB_SPEC.default_eps


def test_serfiq_is_the_papers_formula_by_hand():
    """q = 2 * sigmoid(-2 / m^2 * sum_{i<j} ||e_i - e_j||) over m dropout passes of the last linear
    layer's input, e_i normalised, computed pass by pass in NumPy."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).eval()
    images = torch.rand((2, 3, 4, 4)) * 2 - 1
    passes, dropout = 4, 0.5
    method = create_method("serfiq", model, passes=passes, dropout=dropout)
    quality = method(images)["quality"].numpy()
    masks = method._masks(48, torch.device("cpu")).numpy()  # the method's own draw; the formula is under test
    weight, bias = (p.detach().double().numpy() for p in model[1].parameters())
    for image, expected_from_code in zip(images.double().numpy(), quality):
        x = image.reshape(-1)
        embeddings = [weight @ (x * mask / (1 - dropout)) + bias for mask in masks]
        embeddings = [e / np.linalg.norm(e) for e in embeddings]
        distance = sum(np.linalg.norm(embeddings[i] - embeddings[j]) for i in range(passes) for j in range(i + 1, passes))
        by_hand = 2 / (1 + np.exp(2 * distance / passes**2))
        assert expected_from_code == pytest.approx(by_hand, rel=1e-5)


def test_a_bare_callable_is_wrapped_once_in_the_method_contract(tiny_images):
    from faceqan.methods.base import CallableMethod, as_method

    def quality_only(images):
        return {"quality": images.flatten(1).mean(1)}

    method = as_method(quality_only)
    assert isinstance(method, CallableMethod) and as_method(method) is method
    assert method.device == torch.device("cpu") and method.output_columns[0] == "quality"
    assert torch.equal(method(tiny_images)["quality"], quality_only(tiny_images)["quality"])
    quality_only.output_columns, quality_only.columns = ("quality",), ("quality",)
    assert as_method(quality_only).output_columns == ("quality",)


def test_what_decides_a_score_is_listed_once_per_method(model):
    """Each method's score_options are among its options; scales, resumes and distill read them."""
    from faceqan.methods import METHODS, score_setting_keys

    for name in METHODS:
        if name in ("faceqan-student", "froq"):
            continue  # need a student / layers file for this model's weights (tests/test_student.py, tests/test_froq.py)
        method = create_method(name, model)
        assert set(method.score_options) <= set(method.options()), name
        assert set(method.scale_settings()) == {"model_sha256", "method", *method.score_options}
        assert set(method.scale_settings()) <= set(score_setting_keys())
    assert {"eps", "seed", "passes", "student_sha256"} <= set(score_setting_keys()) and "student" not in score_setting_keys()
