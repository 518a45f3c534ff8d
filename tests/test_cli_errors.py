"""Every subcommand, given a bad argument, answers with one line and exit code 2: no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

import faceqan
from faceqan.cli import EXIT_START_FAILED, main
from helpers import write_face_folder

# (name, arguments): TMP is replaced by the test's folder; FACE by a real face photo, STUDENT by
# the student file shipped for dlib.
BAD_ARGUMENTS = [
    ("score: missing input and an unknown output type", ["score", "TMP/missing.jpg", "-o", "TMP/out.txt"]),
    ("score: unknown model", ["score", "FACE", "-o", "TMP/out.csv", "--model", "no-such-model"]),
    ("score: unknown method", ["score", "FACE", "-o", "TMP/out.csv", "--method", "no-such-method"]),
    ("score: negative eps", ["score", "FACE", "-o", "TMP/out.csv", "--eps", "-1"]),
    ("score: missing student file", ["score", "FACE", "-o", "TMP/out.csv", "--student", "TMP/missing.pt"]),
    ("score: option the method lacks", ["score", "FACE", "-o", "TMP/out.csv", "--method", "flip", "--copies", "3"]),
    ("score: missing scale file", ["score", "FACE", "-o", "TMP/out.csv", "--scale", "TMP/missing.json"]),
    ("score: no batch", ["score", "FACE", "-o", "TMP/out.csv", "--batch-size", "0"]),
    ("serve: public address without a key", ["serve", "--host", "0.0.0.0", "--port", "0"]),
    ("serve: empty API key file", ["serve", "--api-key-file", "TMP/empty.key", "--port", "0"]),
    ("serve: missing API key file", ["serve", "--api-key-file", "TMP/missing.key", "--port", "0"]),
    ("serve: unknown model", ["serve", "--model", "no-such-model", "--port", "0"]),
    ("calibrate: a student", ["calibrate", "FACE", "--student", "STUDENT"]),
    ("calibrate: no face", ["calibrate", "TMP/empty"]),
    ("demo: unknown model", ["demo", "--model", "no-such-model"]),
    ("export: a method that is no student", ["export", "--method", "faceqan", "-o", "TMP/x.onnx"]),
    ("export: missing student file", ["export", "--student", "TMP/missing.pt", "-o", "TMP/x.onnx"]),
    ("distill: missing scores", ["distill", "TMP/missing.csv", "-o", "TMP/student.pt"]),
    ("calibrate-froq: no images", ["calibrate-froq", "TMP/empty", "-o", "TMP/layers.json"]),
    ("froq: missing layers file", ["score", "FACE", "-o", "TMP/out.csv", "--method", "froq", "--froq-layers", "TMP/missing.json"]),
    ("scale: missing scores", ["scale", "TMP/missing.csv", "-o", "TMP/scale.json"]),
    ("explain: missing image", ["explain", "TMP/missing.jpg", "-o", "TMP/explain"]),
    ("report: missing scores", ["report", "TMP/missing.csv", "-o", "TMP/report.html"]),
    ("evaluate: missing protocol", ["evaluate", "TMP/missing_pairs.txt", "--out", "TMP/eval"]),
    ("pick: missing video", ["pick", "TMP/missing.mp4", "-o", "TMP/picks"]),
    ("pick: corrupt video", ["pick", "TMP/corrupt.mp4", "-o", "TMP/picks"]),
    ("pick: an image is no video", ["pick", "FACE", "-o", "TMP/picks"]),
    ("pick: unreachable stream", ["pick", "--source", "rtsp://127.0.0.1:9/none", "-o", "TMP/picks"]),
    ("pick: no best shot", ["pick", "TMP/corrupt.mp4", "-o", "TMP/picks", "--top", "0"]),
    ("pick: no input", ["pick", "-o", "TMP/picks"]),
    ("pick: a model file without a tracking similarity", ["pick", "TMP/corrupt.mp4", "-o", "TMP/picks", "--model", "TMP/model.onnx"]),
    ("unknown subcommand", ["no-such-command"]),
]


@pytest.mark.parametrize(("name", "arguments"), BAD_ARGUMENTS, ids=[name for name, _ in BAD_ARGUMENTS])
def test_a_bad_argument_gets_one_line_and_exit_code_2(name, arguments, tmp_path, capsys):
    face = write_face_folder(tmp_path / "faces", count=1)[0]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.key").write_text("\n")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but not a video" * 10)
    student = Path(faceqan.__file__).parent / "student" / "builtin" / "dlib.pt"
    given = {"FACE": str(face), "STUDENT": str(student)}
    argv = [given.get(arg, arg.replace("TMP", str(tmp_path))) for arg in arguments]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_START_FAILED, (name, captured.err)
    assert "Traceback" not in captured.err + captured.out
    message = captured.err.strip().splitlines()
    assert message and (message[-1].startswith("faceqan") or message[-1].startswith("usage") or "error:" in message[-1]), captured.err
    assert not Path(tmp_path / "student.pt").exists() and not Path(tmp_path / "scale.json").exists() and not (tmp_path / "picks").exists()


def test_the_api_key_file_gives_its_first_line(tmp_path):
    from faceqan.cli import _key_from_file

    (tmp_path / "key").write_text("  s3cret  \nignored\n")
    assert _key_from_file(str(tmp_path / "key")) == "s3cret" and _key_from_file(None) is None
