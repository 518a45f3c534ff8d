"""One run over a folder with every bad case and every odd encoding of real faces."""

import csv

import pytest

from faceqan.cli import EXIT_OK, EXIT_SOME_FAILED, main

from helpers import write_bad_cases, write_face_folder, write_odd_mode_faces, write_two_faces

FAST = ["--copies", "2", "--steps", "1", "--quiet"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_file_gets_its_row_and_faces_score_as_alone(tmp_path):
    folder = tmp_path / "photos"
    faces = [p.name for p in write_face_folder(folder, 2)]
    odd = write_odd_mode_faces(folder)
    bad = write_bad_cases(folder)
    out = tmp_path / "all.csv"
    assert main(["score", str(folder), "-o", str(out), "--batch-size", "3", "--max-pixels", "10000000", *FAST]) == EXIT_SOME_FAILED
    rows = {r["path"].split("/")[-1]: r for r in _rows(out)}
    assert sorted(rows) == sorted(faces + odd + list(bad))
    for name, status in bad.items():
        assert rows[name]["status"] == status, (name, rows[name]["error"])
    for name in faces + odd:
        assert rows[name]["status"] == "ok", (name, rows[name]["error"])
        assert rows[name]["landmarks"] == "refined"  # the default; "single" or the fallback otherwise
    assert all(rows[name]["landmarks"] == "" for name in bad)
    for name in faces + ["cmyk.jpg", "phone.jpg"]:
        alone = tmp_path / f"alone_{name}.csv"
        assert main(["score", str(folder / name), "-o", str(alone), *FAST]) == EXIT_OK
        # Equal up to float32 rounding: other batch sizes take other convolution kernels, which
        # can flip the sign of near-zero gradient components (see README, reproducibility).
        assert float(_rows(alone)[0]["quality"]) == pytest.approx(float(rows[name]["quality"]), rel=1e-4)


def test_face_policies(tmp_path):
    photo = tmp_path / "two.jpg"
    write_two_faces(photo)
    out = tmp_path / "all.csv"
    assert main(["score", str(photo), "-o", str(out), "--faces", "all", *FAST]) == EXIT_OK
    rows = _rows(out)
    assert [r["face"] for r in rows] == ["0", "1"] and all(r["status"] == "ok" for r in rows)
    widths = [float(r["box"].split()[2]) for r in rows]
    assert widths[0] > widths[1] and float(rows[0]["box"].split()[0]) < 512 <= float(rows[1]["box"].split()[0])

    largest = tmp_path / "largest.csv"
    assert main(["score", str(photo), "-o", str(largest), *FAST]) == EXIT_OK
    assert len(_rows(largest)) == 1 and _rows(largest)[0]["box"] == rows[0]["box"]

    strict = tmp_path / "strict.csv"
    assert main(["score", str(photo), "-o", str(strict), "--faces", "error", *FAST]) == EXIT_SOME_FAILED
    assert _rows(strict)[0]["status"] == "many_faces"

    tiny = tmp_path / "tiny.csv"
    assert main(["score", str(photo), "-o", str(tiny), "--min-face-size", "2000", *FAST]) == EXIT_SOME_FAILED
    assert _rows(tiny)[0]["status"] == "no_face" and "smaller than 2000" in _rows(tiny)[0]["error"]
