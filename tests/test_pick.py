"""Best shots (`faceqan pick`, `faceqan.pick`): tracking, choosing, sources that end or stop."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

import faceqan
from faceqan.bestshots import Tracker, TrackingSettings
from faceqan.bestshots import sources as sources_module
from faceqan.bestshots.picker import Picker
from faceqan.bestshots.synthetic import make_clip
from faceqan.cli import EXIT_INTERRUPTED, EXIT_OK, main

# One photo per person with one face in it (others hold a second face in the background).
PEOPLE = ("Abdullah_Gul/Abdullah_Gul_0013.jpg", "Colin_Powell/Colin_Powell_0038.jpg", "George_W_Bush/George_W_Bush_0007.jpg")


def photos(lfw: Path, count: int) -> list[Path]:
    return [lfw / "images_deepfunneled" / name for name in PEOPLE[:count]]


def read_picks(folder: Path) -> list[dict]:
    with (folder / "picks.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def centre(box: str) -> tuple[float, float]:
    x, y, w, h = map(float, box.split())
    return x + w / 2, y + h / 2


def inside(point: tuple[float, float], box: tuple[int, int, int, int]) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


# --- the tracker alone (fast) ---


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, np.float64)
    return vector / np.linalg.norm(vector)


A, B = unit([1, 0, 0, 0]), unit([0, 1, 0, 0])
SETTINGS = TrackingSettings(similarity=0.9, near=0.5, max_gap=1.0)


def test_people_who_trade_places_keep_their_tracks():
    tracker = Tracker(SETTINGS)
    left, right = (0, 0, 100, 100), (300, 0, 100, 100)
    first, _ = tracker.update(0.0, [left, right], np.stack([A, B]), [0.5, 0.5])
    swapped, ended = tracker.update(0.04, [left, right], np.stack([B, A]), [0.5, 0.5])  # B now where A was
    assert swapped == first[::-1] and not ended


def test_a_degraded_face_keeps_its_track_by_place_but_not_elsewhere():
    tracker = Tracker(SETTINGS)
    box = (0, 0, 100, 100)
    (track,), _ = tracker.update(0.0, [box], A[None], [0.9])
    blurred = unit(A + 1.1 * B)  # cosine 0.67 to A: below similarity, above near
    (same,), _ = tracker.update(0.04, [(5, 5, 100, 100)], blurred[None], [0.3])
    assert same == track
    other_blur = unit(A + 1.1 * unit([0, 0, 1, 0]))  # as far from the track's faces, but where it is not
    (elsewhere,), _ = tracker.update(0.08, [(400, 0, 100, 100)], other_blur[None], [0.3])  # no overlap: a new track
    assert elsewhere != track


def test_a_track_ends_after_the_gap_and_the_rest_at_finish():
    tracker = Tracker(SETTINGS)
    tracker.update(0.0, [(0, 0, 100, 100)], A[None], [0.9])
    tracker.update(0.5, [(300, 0, 100, 100)], B[None], [0.9])
    _, ended = tracker.update(1.2, [], np.zeros((0, 4)), [])
    assert [t.faces for t in ended] == [1] and len(tracker.active) == 1
    assert len(tracker.finish()) == 1 and tracker.active == []


def test_tracking_needs_a_similarity_for_a_model_it_does_not_know():
    with pytest.raises(ValueError, match="--track-similarity"):
        TrackingSettings.for_model("my_model.onnx")
    assert TrackingSettings.for_model("my_model.onnx", 0.6).near == pytest.approx(0.2)
    assert TrackingSettings.for_model("sface").similarity < TrackingSettings.for_model("dlib").similarity


def test_only_the_best_k_shots_of_a_track_are_held():
    picker = Picker.__new__(Picker)
    picker.top, picker.min_quality, picker._shots = 2, 0.2, {}
    for frame, quality in enumerate([0.5, 0.1, 0.9, 0.7, 0.3, 0.9]):
        picker._keep(0, type("S", (), {"quality": quality, "frame": frame})())
    kept = sorted(((quality, order) for quality, order, _ in picker._shots[0]), reverse=True)
    assert kept == [(0.9, -2), (0.9, -5)]  # the two best (frames 2 and 5); of equal ones the earlier ranks first


# --- real faces (slow: a detector, an FR model and a student per frame) ---


@pytest.fixture(scope="module")
def two_people_clip(lfw_root, tmp_path_factory) -> tuple[Path, object]:
    clip = tmp_path_factory.mktemp("clip") / "two.mp4"
    return clip, make_clip(clip, photos(lfw_root, 2), frames=40, seed=0)


@pytest.mark.slow
def test_pick_finds_one_track_per_person_and_their_clean_frame(two_people_clip, tmp_path):
    clip, truth = two_people_clip
    assert main(["pick", str(clip), "-o", str(tmp_path / "out"), "--top", "2"]) == EXIT_OK
    rows = read_picks(tmp_path / "out")
    best = [row for row in rows if row["rank"] == "1"]
    assert len(best) == 2 and len(rows) == 4
    for person, frame in enumerate(truth.clean_frame):
        (row,) = [row for row in best if int(row["frame"]) == frame]  # each person's clean frame is a track's best
        assert inside(centre(row["box"]), truth.clean_box[person])
        assert row["status"] == "ok" and 0 <= float(row["quality_0_100"]) <= 100
        crop = cv2.imread(str(tmp_path / "out" / row["crop"]))
        assert crop.shape == (150, 150, 3)  # dlib's aligned chip
        assert cv2.imread(str(tmp_path / "out" / row["frame_file"])).shape == (480, 640, 3)
    # a kept shot has the score `faceqan score` gives its frame (refined landmarks)
    model = faceqan.create_model("dlib")
    for row in best:
        scored = faceqan.score_paths([f"{clip}#frame={row['frame']}"], model, method="faceqan-student", faces="all")
        same_face = min(scored, key=lambda r: np.hypot(*np.subtract(centre(r["box"]), centre(row["box"]))))
        assert float(row["quality"]) == pytest.approx(same_face["quality"], abs=1e-5)
    for track in {row["track"] for row in rows}:  # rank 2 is no better than rank 1
        first, second = sorted((row for row in rows if row["track"] == track), key=lambda row: int(row["rank"]))
        assert float(first["quality"]) >= float(second["quality"])


@pytest.mark.slow
def test_the_python_api_follows_three_people_through_a_swap(lfw_root, tmp_path):
    clip = tmp_path / "three.avi"
    truth = make_clip(clip, photos(lfw_root, 3), frames=40, seed=1)
    tracks = list(faceqan.pick([str(clip)], model="dlib", top=1))
    assert len(tracks) == 3
    assert sorted(track.shots[0].frame for track in tracks) == sorted(truth.clean_frame)
    assert all(track.faces >= 25 for track in tracks)  # each followed through most of the 40 frames
    assert all(track.shots[0].crop.shape == (150, 150, 3) for track in tracks)


@pytest.mark.slow
def test_min_quality_leaves_a_row_saying_so(two_people_clip, tmp_path):
    clip, _ = two_people_clip
    assert main(["pick", str(clip), "-o", str(tmp_path / "out"), "--min-quality", "0.999", "--frame-step", "4"]) == EXIT_OK
    rows = read_picks(tmp_path / "out")
    assert len(rows) == 2 and {row["status"] for row in rows} == {"below_min_quality"} and not any(row["crop"] for row in rows)


def write_blank_clip(path: Path, frames: int = 6) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    for _ in range(frames):
        writer.write(np.full((240, 320, 3), 120, np.uint8))
    writer.release()


def test_a_clip_without_faces_gives_an_empty_csv_and_exit_0(tmp_path, capsys):
    write_blank_clip(tmp_path / "empty.avi")
    assert main(["pick", str(tmp_path / "empty.avi"), "-o", str(tmp_path / "out")]) == EXIT_OK
    assert (tmp_path / "out" / "picks.csv").read_text().strip().startswith("source,track,rank") and read_picks(tmp_path / "out") == []
    assert "stopped: end of the video (6 frames)" in capsys.readouterr().err


def test_a_folder_of_frames_is_a_source_and_its_bad_files_are_skipped(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        cv2.imwrite(str(frames / f"{index:03d}.png"), np.full((60, 80, 3), 90, np.uint8))
    (frames / "004.jpg").write_bytes(b"not an image")
    assert main(["pick", str(frames), "-o", str(tmp_path / "out")]) == EXIT_OK
    err = capsys.readouterr().err
    assert "3 frames looked at" in err and "1 unreadable frame files skipped" in err and "end of the folder (4 frames)" in err


@pytest.mark.slow
def test_a_live_source_that_stops_writes_its_tracks_and_exits_0(two_people_clip, tmp_path, monkeypatch, capsys):
    clip, _ = two_people_clip
    monkeypatch.setattr(sources_module, "LIVE_RETRIES", 2)
    monkeypatch.setattr(sources_module, "LIVE_RETRY_WAIT_S", 0.01)
    # a file:// URL is read as a stream: when it ends, it is a source that stopped sending
    assert main(["pick", "--source", clip.resolve().as_uri(), "-o", str(tmp_path / "out"), "--frame-step", "2"]) == EXIT_OK
    assert "the source stopped sending frames after 40" in capsys.readouterr().err
    assert len(read_picks(tmp_path / "out")) == 2


@pytest.mark.slow
@pytest.mark.parametrize("live", [True, False])
def test_ctrl_c_writes_the_tracks_so_far(two_people_clip, tmp_path, monkeypatch, capsys, live):
    clip, _ = two_people_clip
    feed = Picker.feed

    def feed_then_interrupt(self, frame):
        if frame.index >= 12:
            raise KeyboardInterrupt
        return feed(self, frame)

    monkeypatch.setattr(Picker, "feed", feed_then_interrupt)
    source = ["--source", clip.resolve().as_uri()] if live else [str(clip)]
    assert main(["pick", *source, "-o", str(tmp_path / "out")]) == (EXIT_OK if live else EXIT_INTERRUPTED)
    assert "stopped: stopped by Ctrl-C" in capsys.readouterr().err
    rows = read_picks(tmp_path / "out")
    assert len(rows) == 2 and all(int(row["frame"]) < 12 for row in rows)
