"""Video inputs: every Nth frame an input of its own, named clip#frame=N."""

import csv

import cv2
import numpy as np
import pytest

from faceqan.cli import EXIT_OK, EXIT_SOME_FAILED, main
from faceqan.errors import DecodeError
from faceqan.faces.video import VideoFrames, count_frames, expand_videos, frame_name, parse_frame_name

from helpers import face_rgb

FAST = ["--copies", "2", "--steps", "1", "--quiet"]


def write_video(path, frames_rgb: list[np.ndarray], fps: float = 5.0) -> str:
    height, width = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for rgb in frames_rgb:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


def grey_frames(count: int) -> list[np.ndarray]:
    return [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(count)]


def test_frames_read_by_index_in_any_order(tmp_path):
    video = write_video(tmp_path / "grey.avi", grey_frames(6))
    assert count_frames(video) == 6
    frames = VideoFrames()
    for index in [0, 1, 2, 5, 3, 0, 4]:  # in order, skipping ahead, and back
        assert abs(frames.read(video, index, 10**6).mean() - 40 * index) < 3, index
    with pytest.raises(DecodeError, match="ends after 6 frames"):
        frames.read(video, 6, 10**6)
    with pytest.raises(DecodeError, match="over the limit"):
        frames.read(video, 0, 1000)


def test_videos_expand_into_frame_names(tmp_path):
    video = write_video(tmp_path / "grey.avi", grey_frames(5))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    image = str(tmp_path / "photo.jpg")
    assert expand_videos([image, video, str(broken)], frame_step=2) == [
        image, frame_name(video, 0), frame_name(video, 2), frame_name(video, 4), str(broken),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="frame step"):
        expand_videos([video], frame_step=0)


def test_frame_names_parse_back():
    assert parse_frame_name("clips/a.mp4#frame=12") == ("clips/a.mp4", 12)
    assert parse_frame_name("a.jpg#frame=1") is None  # not a video
    assert parse_frame_name("a.mp4#frame=x") is None
    assert parse_frame_name("a.mp4") is None


def test_score_a_video_frame_by_frame_and_resume(tmp_path):
    face = cv2.resize(face_rgb(), (256, 256), interpolation=cv2.INTER_AREA)
    blank = np.full_like(face, 90)
    video = write_video(tmp_path / "clip.avi", [face, blank, np.clip(face.astype(int) + 20, 0, 255).astype(np.uint8), face])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    out = tmp_path / "frames.csv"
    args = ["score", video, str(broken), "--frame-step", "2", "-o", str(out), *FAST]
    assert main(args) == EXIT_SOME_FAILED
    with open(out, newline="") as handle:
        rows = {r["path"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {frame_name(video, 0), frame_name(video, 2), str(broken)}
    assert rows[frame_name(video, 0)]["status"] == "ok" and rows[frame_name(video, 2)]["status"] == "ok"
    assert rows[str(broken)]["status"] == "decode_error" and "video" in rows[str(broken)]["error"]
    assert main([*args, "--resume"]) == EXIT_OK  # nothing left to do
    with open(out, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3


def test_api_gives_a_row_per_frame(tmp_path):
    import faceqan
    from faceqan.faces.prepare import FacePreparer

    face = cv2.resize(face_rgb(), (256, 256), interpolation=cv2.INTER_AREA)
    video = write_video(tmp_path / "clip.avi", [face, np.full_like(face, 90)])
    model = faceqan.create_model("dlib")
    rows = faceqan.score_paths([video], model, faceqan.FaceQAN(model, copies=2, steps=1))
    assert [(r["path"], r["status"]) for r in rows] == [(frame_name(video, 0), "ok"), (frame_name(video, 1), "no_face")]
    assert FacePreparer(model.spec)(frame_name(video, 7))[0].status == "decode_error"
