"""A killed or interrupted run, resumed, ends with exactly the rows of an uninterrupted run."""

import csv
import signal
import subprocess
import time

import pytest

from faceqan.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_START_FAILED, main

from helpers import start_cli, write_face_folder

ARGS = ["--copies", "2", "--steps", "1", "--batch-size", "1", "--quiet"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _start(folder, out):
    return start_cli("score", str(folder), "-o", str(out), *ARGS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_rows(out, process, minimum=2, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out.exists() and out.read_text().count("\n") >= minimum + 1:
            return
        if process.poll() is not None:
            pytest.fail(f"run ended before it could be interrupted: {process.stderr.read().decode()}")
        time.sleep(0.02)
    pytest.fail("no rows were written in time")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    write_face_folder(folder, 16)
    return folder


@pytest.fixture(scope="module")
def reference(faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "all.csv"
    assert main(["score", str(faces), "-o", str(out), *ARGS]) == EXIT_OK
    return {row["path"]: row for row in _rows(out)}


def _check_matches(out, reference):
    rows = _rows(out)
    assert sorted(row["path"] for row in rows) == sorted(reference)  # exactly one row per input
    for row in rows:
        assert row["status"] == "ok"
        assert float(row["quality"]) == pytest.approx(float(reference[row["path"]]["quality"]), abs=1e-6)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(faces, reference, tmp_path, how):
    out = tmp_path / "scores.csv"
    process = _start(faces, out)
    _wait_for_rows(out, process)
    process.send_signal(how)
    code = process.wait(timeout=60)
    if how == signal.SIGINT:
        assert code == EXIT_INTERRUPTED, process.stderr.read().decode()
    written = _rows(out)
    assert 2 <= len(written) < len(reference)
    assert main(["score", str(faces), "-o", str(out), "--resume", *ARGS]) == EXIT_OK
    _check_matches(out, reference)


def test_torn_last_line_is_dropped_on_resume(faces, reference, tmp_path):
    out = tmp_path / "scores.csv"
    subset = sorted(faces.iterdir())[:3]
    assert main(["score", *map(str, subset), "-o", str(out), *ARGS]) == EXIT_OK
    text = out.read_text()
    out.write_text(text[: len(text) - 25])  # as if killed in the middle of writing a row
    assert main(["score", str(faces), "-o", str(out), "--resume", *ARGS]) == EXIT_OK
    _check_matches(out, reference)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_other_formats_resume(faces, reference, tmp_path, suffix):
    import json

    out = tmp_path / f"scores{suffix}"
    subset = sorted(faces.iterdir())[:4]
    assert main(["score", *map(str, subset), "-o", str(out), *ARGS]) == EXIT_OK
    assert main(["score", str(faces), "-o", str(out), "--resume", *ARGS]) == EXIT_OK
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
        assert not (tmp_path / "scores.parquet.partial.jsonl").exists()
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(reference)
    for row in rows:
        assert row["quality"] == pytest.approx(float(reference[row["path"]]["quality"]), abs=1e-6)


def test_resume_needs_the_same_faceqan_version_and_weights_but_not_the_same_torch(tmp_path, capsys):
    import json

    import torch

    import faceqan
    from faceqan.models import create_model

    faces = write_face_folder(tmp_path / "in", 1)
    out = tmp_path / "out.csv"
    assert main(["score", str(faces[0]), "-o", str(out), *ARGS]) == EXIT_OK
    sidecar = tmp_path / "out.csv.settings.json"
    original = json.loads(sidecar.read_text())
    assert original["faceqan"] == faceqan.__version__ and original["provenance"]["torch"] == torch.__version__
    assert original["model_sha256"] == create_model("dlib").fingerprint()

    changed = {**original, "provenance": {**original["provenance"], "torch": "0.0.1"}}  # another torch: still resumable
    sidecar.write_text(json.dumps(changed))
    assert main(["score", str(faces[0]), "-o", str(out), "--resume", *ARGS]) == EXIT_OK
    for key, stale in (("faceqan", "0.0.1"), ("model_sha256", "0" * 64)):  # rows of another version or other weights
        sidecar.write_text(json.dumps({**original, key: stale}))
        assert main(["score", str(faces[0]), "-o", str(out), "--resume", *ARGS]) == EXIT_START_FAILED
        assert f"settings differ from its run ({key})" in capsys.readouterr().err


def test_a_csv_with_other_columns_is_not_appended_to(faces, tmp_path, capsys):
    out = tmp_path / "old.csv"
    subset = sorted(faces.iterdir())[:1]
    assert main(["score", *map(str, subset), "-o", str(out), *ARGS]) == EXIT_OK
    lines = out.read_text().splitlines()
    assert lines[0].split(",")[4] == "landmarks"
    old_layout = [",".join(line.split(",")[:4] + line.split(",")[5:]) for line in lines]  # as written before the column existed
    out.write_text("\n".join(old_layout) + "\n")
    assert main(["score", str(faces), "-o", str(out), "--resume", *ARGS]) == EXIT_START_FAILED
    assert "differ from this version's" in capsys.readouterr().err
    assert out.read_text() == "\n".join(old_layout) + "\n"  # nothing appended
