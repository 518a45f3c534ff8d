"""The 0-100 scale: a score's share of the reference faces it beats, for one model and setting."""

import csv
import json
import shutil

import numpy as np
import pytest

from faceqan.cli import EXIT_OK, EXIT_START_FAILED, main
from faceqan.scale import QualityScale, fit_scale, load_scale

from helpers import write_face_folder

FAST = ["--copies", "2", "--steps", "1", "--quiet"]


def test_a_score_maps_to_the_share_of_reference_faces_it_beats():
    scale = QualityScale(np.linspace(0.5, 1.0, 101), {}, "test")
    np.testing.assert_array_equal(scale(np.array([0.5, 0.75, 1.0, 0.2, 1.3])), [0, 50, 100, 0, 100])
    assert np.isnan(scale(np.array([np.nan]))[0])
    values = scale(np.linspace(0, 1.2, 50))
    assert np.all(np.diff(values) >= 0)  # monotone
    tied = QualityScale(np.array([0.0] * 51 + list(np.linspace(0.01, 1, 50))), {}, "ties")
    assert tied(np.array([0.0]))[0] == 25  # a score equal to half the reference sits in the middle of their ranks


def test_fit_use_and_refusal_of_a_scale(tmp_path, capsys):
    faces = write_face_folder(tmp_path / "in", 2)
    first = tmp_path / "first.csv"
    assert main(["score", str(faces[0]), "-o", str(first), *FAST]) == EXIT_OK
    # A reference of 200 scores made with the same model and settings (the sidecar says so).
    reference = tmp_path / "reference.csv"
    rng = np.random.default_rng(0)
    with open(reference, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "face", "quality", "status", "error"])
        writer.writerows([f"r{i}.jpg", 0, q, "ok", ""] for i, q in enumerate(rng.uniform(0.6, 0.95, 200)))
    shutil.copy(f"{first}.settings.json", f"{reference}.settings.json")
    scale_file = tmp_path / "scale.json"
    assert main(["scale", str(reference), "-o", str(scale_file), "--reference", "synthetic"]) == EXIT_OK
    scale = load_scale(scale_file)
    assert scale.reference == "synthetic (200 faces)" and scale.settings["copies"] == 2
    out = tmp_path / "scaled.csv"
    assert main(["score", str(tmp_path / "in"), "-o", str(out), "--scale", str(scale_file), *FAST]) == EXIT_OK
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert float(row["quality_0_100"]) == scale(np.array([float(row["quality"])]))[0]
    # The same scale for another setting is refused before scoring.
    assert main(["score", str(faces[0]), "-o", str(tmp_path / "x.csv"), "--scale", str(scale_file), "--copies", "3", "--steps", "1"]) == EXIT_START_FAILED
    assert "fitted for other settings (copies differ)" in capsys.readouterr().err
    # Without a scale for the settings the column is there, and empty.
    assert rows and all(row["quality_0_100"] != "" for row in rows)
    with open(first, newline="") as handle:
        assert next(csv.DictReader(handle))["quality_0_100"] == ""


def test_fitting_needs_enough_faces_of_one_setting(tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("path,face,quality,status,error\na,0,0.5,ok,\n")
    (tmp_path / "small.csv.settings.json").write_text(json.dumps({"method": "faceqan", "eps": 0.01}))
    with pytest.raises(ValueError, match="at least 100"):
        fit_scale([small], "x")


@pytest.mark.parametrize("fixture", ["dlib_model", "sface_model"])
def test_each_builtin_model_has_its_scale_at_its_defaults_only(fixture, request):
    from faceqan.methods import create_method

    model = request.getfixturevalue(fixture)
    method = create_method("faceqan", model)
    assert method.scale is not None, f"no built-in scale for {model.spec.name} at its defaults"
    assert method.scale.reference.startswith("LFW View 1 training images")
    assert method.scale.settings["model_sha256"] == method.scale_settings()["model_sha256"]
    # Its 50 is the reference's median: a plausible Q of that model, not another model's.
    assert 0.5 < method.scale.percentiles[50] < 0.95
    assert create_method("faceqan", model, copies=3).scale is None


@pytest.mark.parametrize("fixture", ["dlib_model", "sface_model"])
def test_each_shipped_student_has_its_own_scale(fixture, request):
    from faceqan.methods import create_method

    model = request.getfixturevalue(fixture)
    student = create_method("faceqan-student", model)
    assert student.scale is not None and student.scale.settings["student_sha256"] == student.sha256
    teacher = create_method("faceqan", model).scale
    assert student.scale is not teacher and student.scale.settings["method"] == "faceqan-student"
