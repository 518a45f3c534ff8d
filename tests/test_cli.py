"""The faceqan command end to end, on real faces and bad files."""

import csv

import pytest

from faceqan.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_START_FAILED, main

from helpers import write_bad_cases, write_face_folder

FAST = ["--copies", "2", "--steps", "1", "--quiet"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_score_folder_with_faces_and_bad_files(tmp_path):
    faces = write_face_folder(tmp_path / "in", 2)
    expected = write_bad_cases(tmp_path / "in" / "bad")
    out = tmp_path / "out.csv"
    code = main(["score", str(tmp_path / "in"), "-o", str(out), "--max-pixels", "10000000", *FAST])
    assert code == EXIT_SOME_FAILED
    rows = {r["path"].split("/")[-1]: r for r in _rows(out)}
    assert len(rows) == len(faces) + len(expected)
    for name, status in expected.items():
        assert rows[name]["status"] == status and rows[name]["error"], name
        assert rows[name]["quality"] == ""
    for path in faces:
        row = rows[path.name]
        assert row["status"] == "ok" and row["error"] == ""
        assert 0 < float(row["quality"]) <= 1
        for column in ("mean_sim", "std_sim", "flip_sim", "q_adv"):
            assert row[column] != ""


def test_all_ok_exits_zero_and_list_file_input(tmp_path):
    faces = write_face_folder(tmp_path / "in", 1)
    listing = tmp_path / "list.txt"
    listing.write_text("in/" + faces[0].name + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", str(listing), "-o", str(out), *FAST]) == EXIT_OK
    assert out.read_text().count("\n") == 1


def test_output_exists_without_resume_is_refused(tmp_path):
    faces = write_face_folder(tmp_path / "in", 1)
    out = tmp_path / "out.csv"
    assert main(["score", str(faces[0]), "-o", str(out), *FAST]) == EXIT_OK
    assert main(["score", str(faces[0]), "-o", str(out), *FAST]) == EXIT_START_FAILED
    assert main(["score", str(faces[0]), "-o", str(out), "--resume", *FAST]) == EXIT_OK
    assert len(_rows(out)) == 1
    # Resuming with other settings would mix incomparable scores.
    assert main(["score", str(faces[0]), "-o", str(out), "--resume", "--eps", "0.02", *FAST]) == EXIT_START_FAILED
    assert main(["score", str(faces[0]), "-o", str(out), "--resume", "--landmarks", "single", *FAST]) == EXIT_START_FAILED


def test_refined_landmarks_reach_the_chip(tmp_path):
    faces = write_face_folder(tmp_path / "in", 1)
    quality = {}
    for mode in ("single", "refined"):
        out = tmp_path / f"{mode}.csv"
        assert main(["score", str(faces[0]), "-o", str(out), "--landmarks", mode, *FAST]) == EXIT_OK
        quality[mode] = float(_rows(out)[0]["quality"])
    assert quality["single"] != quality["refined"]  # another crop, another score
    assert quality["refined"] == pytest.approx(quality["single"], abs=0.1)  # of the same face


def test_missing_input_cannot_start(tmp_path, capsys):
    assert main(["score", str(tmp_path / "nope"), "-o", str(tmp_path / "o.csv")]) == EXIT_START_FAILED
    assert "input not found" in capsys.readouterr().err


def test_bad_usage_cannot_start(tmp_path):
    assert main(["score"]) == EXIT_START_FAILED
    assert main(["score", "x.jpg", "-o", str(tmp_path / "o.xlsx")]) == EXIT_START_FAILED


def test_models_lists_dlib(capsys):
    assert main(["models"]) == EXIT_OK
    assert "dlib: 150x150 RGB" in capsys.readouterr().out


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_demo_ranks_the_samples(capsys, variant):
    assert main(["demo", "--variant", variant, "--copies", "2", "--steps", "1"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert any("original" in line for line in lines) and any("blur sigma 5" in line for line in lines)
    # The noisy copy's refinement crops hold no face: its line says which landmarks aligned it.
    [noisy] = [line for line in lines if "noise sigma 40" in line]
    assert noisy.endswith("(landmarks: single: refinement found no face)")
    assert not any("landmarks" in line for line in lines if "original" in line)


def test_score_with_sface_from_a_raw_photo(tmp_path):
    faces = write_face_folder(tmp_path / "in", 1)
    out = tmp_path / "out.csv"
    assert main(["score", str(faces[0]), "-o", str(out), "--model", "sface", *FAST]) == EXIT_OK
    [row] = _rows(out)
    assert row["status"] == "ok" and 0 < float(row["quality"]) <= 1


def test_score_with_a_users_state_dict(tmp_path):
    import torch

    from faceqan.models.iresnet import iresnet

    torch.manual_seed(0)
    weights = tmp_path / "r18.pth"
    torch.save(iresnet("r18", 32).state_dict(), weights)
    faces = write_face_folder(tmp_path / "in", 1)
    out = tmp_path / "out.csv"
    assert main(["score", str(faces[0]), "-o", str(out), "--model", str(weights), "--arch", "r18", *FAST, "--eps", "0.004"]) == EXIT_OK
    assert _rows(out)[0]["status"] == "ok"
    assert main(["score", str(faces[0]), "-o", str(tmp_path / "o2.csv"), "--model", str(weights), "--arch", "r34", *FAST, "--eps", "0.004"]) == EXIT_START_FAILED


def test_a_model_file_is_not_scored_at_an_eps_nobody_measured(tmp_path, capsys):
    import torch

    from faceqan.models.iresnet import iresnet

    torch.manual_seed(0)
    weights = tmp_path / "r18.pth"
    torch.save(iresnet("r18", 32).state_dict(), weights)
    faces = write_face_folder(tmp_path / "in", 1)
    out = tmp_path / "out.csv"
    assert main(["score", str(faces[0]), "-o", str(out), "--model", str(weights), "--arch", "r18", *FAST]) == EXIT_START_FAILED
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "has no calibrated FaceQAN eps" in line and "faceqan calibrate FACES --model r18.pth" in line
    assert not out.exists()
    # The mirror term and other methods without an eps need none.
    assert main(["score", str(faces[0]), "-o", str(out), "--model", str(weights), "--arch", "r18", "--method", "flip", "--quiet"]) == EXIT_OK


def test_a_failing_item_does_not_sink_its_batch():
    import numpy as np
    import torch

    from faceqan.faces.prepare import PreparedFace
    from faceqan.pipeline import score_batch

    def picky(images):
        if torch.any(images.amax(dim=(1, 2, 3)) > 0.99):
            raise RuntimeError("saturated image")
        return {"quality": images.mean(dim=(1, 2, 3))}

    chips = [np.full((4, 4, 3), v, np.uint8) for v in (10, 255, 30)]
    rows = score_batch([PreparedFace(f"f{i}", chip=c) for i, c in enumerate(chips)], picky)
    assert [r["status"] for r in rows] == ["ok", "score_error", "ok"]
    assert "saturated" in rows[1]["error"] and rows[0]["quality"] < rows[2]["quality"]


def test_a_batch_too_large_for_memory_runs_in_halves():
    import numpy as np
    import torch

    from faceqan.faces.prepare import PreparedFace
    from faceqan.pipeline import BatchLimit, score_batch

    sizes = []

    def small_memory(images):
        sizes.append(images.shape[0])
        if images.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return {"quality": images.mean(dim=(1, 2, 3))}

    chips = [np.full((4, 4, 3), 10 * i, np.uint8) for i in range(16)]
    faces = [PreparedFace(f"f{i}", chip=c) for i, c in enumerate(chips)]
    rows = score_batch(faces, small_memory)
    assert sizes == [16, 8, 4, 4, 8, 4, 4]  # halves, not 16 single chips
    assert all(r["status"] == "ok" for r in rows)
    assert [r["quality"] for r in rows] == sorted(r["quality"] for r in rows)  # each row its own chip
    # With a limit kept across batches, only the first batch pays for finding the size.
    limit, sizes[:] = BatchLimit(), []
    score_batch(faces, small_memory, limit=limit)
    assert limit.size == 4 and sizes == [16, 8, 4, 4, 4, 4]
    sizes.clear()
    assert [r["quality"] for r in score_batch(faces, small_memory, limit=limit)] == [r["quality"] for r in rows]
    assert sizes == [4, 4, 4, 4]


def test_calibrate_prints_the_eps_that_reaches_the_target(tmp_path, capsys):
    import re

    write_face_folder(tmp_path / "faces", count=2)
    write_bad_cases(tmp_path / "faces")  # files without a face are skipped
    assert main(["calibrate", str(tmp_path / "faces"), "--copies", "2", "--steps", "1", "--target-sim", "0.99"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "model dlib, 2 faces" in out
    eps, similarity = re.search(r"eps (\S+) gives a median mean_sim of (\S+) \(target 0.99\): use --eps", out).groups()
    assert abs(float(similarity) - 0.99) < 0.003 and float(eps) > 0


def test_calibrate_without_faces_cannot_start(tmp_path, capsys):
    write_bad_cases(tmp_path / "bad")
    assert main(["calibrate", str(tmp_path / "bad")]) == EXIT_START_FAILED
    err = capsys.readouterr().err
    assert "no face found in the inputs (decode_error 3, no_face 2)" in err  # huge.png is under the default pixel limit


def test_score_with_another_method_writes_its_columns(tmp_path, capsys):
    faces = write_face_folder(tmp_path / "in", 1)
    out = tmp_path / "out.csv"
    assert main(["score", str(faces[0]), "-o", str(out), "--method", "flip", "--quiet"]) == EXIT_OK
    rows = _rows(out)
    assert list(rows[0]) == ["path", "face", "box", "det_score", "landmarks", "quality", "quality_0_100", "status", "error"]
    assert 0.9 < float(rows[0]["quality"]) <= 1
    assert main(["score", str(faces[0]), "-o", str(tmp_path / "x.csv"), "--method", "flip", "--eps", "0.01"]) == EXIT_START_FAILED
    assert "quality method 'flip' takes no option eps" in capsys.readouterr().err


def test_methods_lists_every_registered_method(capsys):
    import faceqan

    assert main(["methods"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert all(f"{name}: " in printed for name in faceqan.list_methods())


@pytest.mark.parametrize(("device", "message"), [("gpu", "unknown device 'gpu'"), ("cuda:7", "cuda")])
def test_a_device_that_is_not_there_is_one_line_and_exit_2(tmp_path, capsys, device, message):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a CUDA device 7")
    faces = write_face_folder(tmp_path / "in", 1)
    assert main(["score", str(faces[0]), "-o", str(tmp_path / "out.csv"), "--device", device, *FAST]) == EXIT_START_FAILED
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


def test_parquet_output_without_pyarrow_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    import sys

    faces = write_face_folder(tmp_path / "in", 1)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    assert main(["score", str(faces[0]), "-o", str(tmp_path / "out.parquet"), *FAST]) == EXIT_START_FAILED
    assert "pip install 'faceqan[parquet]'" in capsys.readouterr().err
    assert not list(tmp_path.glob("out.parquet*"))


def test_python_dash_m_faceqan_is_the_command():
    import subprocess
    import sys

    import faceqan

    result = subprocess.run([sys.executable, "-m", "faceqan", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"faceqan {faceqan.__version__}"
