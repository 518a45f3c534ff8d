"""`faceqan report`: one HTML page a person opens, checked in headless Chromium."""

import csv
from pathlib import Path

import pytest

from faceqan.cli import EXIT_OK, EXIT_START_FAILED, main
from faceqan.explain.report import even_sample

from browser import chrome_driver
from helpers import write_bad_cases, write_face_folder

FAST = ["--copies", "2", "--steps", "1", "--quiet"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    write_face_folder(root / "in", 5)
    write_bad_cases(root / "in" / "bad")
    scores = root / "scores.csv"
    main(["score", str(root / "in"), "-o", str(scores), "--max-pixels", "10000000", *FAST])
    moved = root / "in" / "face_04.jpg"
    moved.unlink()  # scored, then deleted: the report shows a placeholder
    return root, scores


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def report(scored):
    root, scores = scored
    out = root / "report.html"
    assert main(["report", str(scores), "-o", str(out), "--lowest", "2"]) == EXIT_OK
    return out


@pytest.mark.browser
@pytest.mark.slow
def test_the_report_renders_in_chromium_with_every_image_and_the_csvs_order(report, scored):
    _, scores = scored
    driver = chrome_driver()
    try:
        driver.get(report.as_uri())
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        widths = driver.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        assert widths and all(w > 0 for w in widths)
        shown = driver.execute_script(
            "return Array.from(document.querySelectorAll('#file0 .sheet')[0].querySelectorAll('figure')).map(f => f.dataset.path)"
        )
        ok = sorted((r for r in _rows(scores) if r["status"] == "ok"), key=lambda r: -float(r["quality"]))
        assert shown == [r["path"] for r in ok]
        text = driver.find_element("tag name", "body").text
        assert "image moved, deleted or unreadable" in text and "Failures (5)" in text
        noise = driver.execute_script("return document.querySelectorAll('img.noise').length")
        assert noise == sum(Path(r["path"]).exists() for r in ok[-2:])  # each of the two lowest still on disk gets its noise map
    finally:
        driver.quit()


def test_a_file_that_is_not_a_score_output_is_one_line_and_exit_2(tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("name,value\na,1\n")
    assert main(["report", str(other), "-o", str(tmp_path / "r.html")]) == EXIT_START_FAILED
    assert "no column path, face, box, quality, status, error" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_the_sheet_spreads_its_sample_over_the_ranks():
    assert even_sample(5, 10) == [0, 1, 2, 3, 4]
    picked = even_sample(10_000, 60)
    assert picked[0] == 0 and picked[-1] == 9_999 and len(picked) == 60
    assert max(b - a for a, b in zip(picked, picked[1:])) <= 10_000 / 59 + 1
