"""Noise maps that explain a score, and the chips that were scored."""

import csv

import numpy as np
from PIL import Image

from faceqan.cli import EXIT_OK, EXIT_SOME_FAILED, main
from faceqan.faces.chips import chip_name

from helpers import write_bad_cases, write_face_folder

FAST = ["--copies", "2", "--steps", "1"]


def test_explain_writes_a_panel_per_face_and_names_the_failures(tmp_path, capsys):
    faces = write_face_folder(tmp_path / "in", 2)
    write_bad_cases(tmp_path / "bad")
    out = tmp_path / "panels"
    code = main(["explain", str(faces[0]), str(faces[1]), str(tmp_path / "bad" / "no_face.png"), "-o", str(out), *FAST])
    assert code == EXIT_SOME_FAILED
    panels = sorted(out.glob("*.png"))
    assert [p.name for p in panels] == sorted(chip_name(str(f), 0) for f in faces)
    with Image.open(panels[0]) as image:
        assert image.size[0] > 600 and image.size[1] > 200
        pixels = np.asarray(image.convert("RGB"))
        assert pixels.std() > 20  # a picture, not a blank page
    err = capsys.readouterr().err
    assert "no_face.png: no_face" in err and "2 panels written" in err


def test_score_keeps_the_chips_it_scored(tmp_path):
    from faceqan.faces.prepare import FacePreparer
    from faceqan.models.dlib import DLIB_SPEC

    faces = write_face_folder(tmp_path / "in", 2)
    out = tmp_path / "scores.csv"
    assert main(["score", str(tmp_path / "in"), "-o", str(out), "--save-chips", str(tmp_path / "chips"), "--quiet", *FAST]) == EXIT_OK
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        saved = np.asarray(Image.open(tmp_path / "chips" / chip_name(row["path"], int(row["face"]))))
        expected = FacePreparer(DLIB_SPEC)(row["path"])[0].chip
        np.testing.assert_array_equal(saved, expected)
    assert len(list((tmp_path / "chips").iterdir())) == len(faces)
