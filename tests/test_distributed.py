"""The ray engine (faceqan.distributed) on a local Ray: the rows of the local engine, bad inputs
as rows, an actor that dies restarted, a killed driver resumed, refusals in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import write_bad_cases

try:
    import ray
except ImportError:  # pragma: no cover - CI installs faceqan[ray]
    if os.environ.get("CI"):
        raise  # CI must run these tests: the README's test command installs ray
    pytest.skip("ray is not installed (pip install 'faceqan[ray]')", allow_module_level=True)

from faceqan.api import score_paths
from faceqan.distributed import ScoringJob, read_folder, run, score
from faceqan.methods import create_method
from faceqan.pipeline import collect_inputs

pytestmark = pytest.mark.ray

FAST = {"copies": 2, "steps": 2}  # FaceQAN with fewer copies and steps: the same code, sooner
VALUE_COLUMNS = ("quality", "mean_sim", "std_sim", "flip_sim", "q_adv", "det_score")


# The method factory below is defined here, not in faceqan: send it to the workers by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def lfw_photos(lfw_root: Path, count: int) -> list[str]:
    people = sorted((lfw_root / "images_deepfunneled").iterdir())
    return [str(sorted(person.glob("*.jpg"))[0]) for person in people[:count]]


def by_input(rows: list[dict]) -> dict[tuple[str, int], dict]:
    keyed = {(row["path"], row["face"]): row for row in rows}
    assert len(keyed) == len(rows), "an input was scored twice"
    return keyed


def assert_same_rows(ray_rows: list[dict], local_rows: list[dict]) -> None:
    """Every column equal; numbers to float32 rounding (NaN and missing alike)."""
    got, expected = by_input(ray_rows), by_input(local_rows)
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        row = got[key]
        assert set(want) <= set(row)  # a local failed row leaves out the method's columns
        for column, other in row.items():
            value = want.get(column)
            if column in VALUE_COLUMNS or column == "quality_0_100":
                a = np.nan if value is None else float(value)
                b = np.nan if other is None else float(other)
                assert np.isclose(a, b, rtol=1e-6, atol=1e-7, equal_nan=True), (key, column, a, b)
            else:
                assert other == value, (key, column, other, value)


@pytest.mark.slow
def test_rows_match_the_local_engine(local_ray, lfw_root, tmp_path, capsys):
    """20 LFW photos plus every kind of bad file: the same rows, statuses and error texts."""
    bad = write_bad_cases(tmp_path / "bad")
    paths = lfw_photos(lfw_root, 20) + collect_inputs([tmp_path / "bad"]) + [str(tmp_path / "gone.jpg")]
    job = ScoringJob("dlib", method_options=FAST)
    with pytest.MonkeyPatch.context() as patch:  # the model is built on workers only, not in this driver
        patch.setattr(ScoringJob, "build_model", lambda *_, **__: pytest.fail("the driver built the model"))
        summary = run(paths, tmp_path / "out", job)
    rows = read_folder(tmp_path / "out").to_pylist()
    local = score_paths(paths, job.build_model(), **FAST)
    assert_same_rows(rows, local)
    assert summary.statuses["ok"] == 20 and sum(summary.statuses.values()) == len(paths)
    statuses = {Path(row["path"]).name: row["status"] for row in rows}
    assert statuses["gone.jpg"] == statuses["truncated.jpg"] == statuses["not_an_image.png"] == "decode_error"
    assert statuses["no_face.png"] == "no_face" and len(bad) == 5
    # The folder is a score output like any other: report, scale and distill read it.
    from faceqan.cli import main

    assert main(["report", str(tmp_path / "out"), "-o", str(tmp_path / "report.html"), "--no-noise-maps"]) == 0
    assert "<th>copies</th><td>2</td>" in (tmp_path / "report.html").read_text()  # the run's settings, from the folder
    assert main(["scale", str(tmp_path / "out"), "-o", str(tmp_path / "scale.json")]) == 2
    assert "the files hold 20" in capsys.readouterr().err  # read all 20 faces; a scale needs 100


@pytest.mark.slow
def test_dataset_of_image_bytes(local_ray, lfw_root):
    """Users with their own pipeline hand in a Ray Dataset of (path, bytes)."""
    photos = lfw_photos(lfw_root, 3)
    items = [{"path": f"upload-{i}", "bytes": Path(p).read_bytes()} for i, p in enumerate(photos)] + [{"path": "junk", "bytes": b"not an image"}]
    rows = score(ray.data.from_items(items), ScoringJob("dlib", method_options=FAST)).take_all()
    local = score_paths(photos, ScoringJob("dlib").build_model(), **FAST)
    got = {row["path"]: row for row in rows}
    for i, row in enumerate(local):
        assert got[f"upload-{i}"]["quality"] == pytest.approx(row["quality"], rel=1e-6)
    assert got["junk"]["status"] == "decode_error"


class DiesOnMarkedFace:
    """Picklable method factory: FaceQAN, except that the first batch holding a blank (all-black)
    face kills its actor process, as a crash or an out-of-memory kill would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, model):
        method = create_method("faceqan", model, **FAST)
        compute, marker = method.compute, self.marker

        def compute_or_die(images):
            blank = (images.flatten(1) == -1).all(dim=1)
            if bool(blank.any()) and not marker.exists():
                marker.write_text("died once")
                os._exit(1)
            return compute(images)

        method.compute = compute_or_die
        return method


@pytest.mark.slow
def test_a_dead_actor_is_restarted_and_its_batch_retried(local_ray, lfw_root, tmp_path):
    aligned = sorted((lfw_root.parent / "lfw_aligned_112" / "data").rglob("*.jpg"))[:6]
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((112, 112, 3), np.uint8)).save(blank)
    paths = [str(p) for p in aligned[:3]] + [str(blank)] + [str(p) for p in aligned[3:]]
    job = ScoringJob("dlib", preparation={"aligned": True}, method_factory=DiesOnMarkedFace(tmp_path / "marker"))
    rows = score(paths, job, batch_size=2).take_all()
    assert (tmp_path / "marker").read_text() == "died once"
    local = score_paths(paths, job.build_model(), aligned=True, **FAST)
    assert_same_rows(rows, local)


def _faceqan(*args: str) -> list[str]:
    return [sys.executable, "-m", "faceqan", *args]


def settled_rows(folder: Path, quiet_s: float = 5.0, limit_s: float = 60.0) -> int:
    """Rows in ``folder`` once no file has appeared for ``quiet_s``: a write task already running
    in one of Ray's worker processes may still finish its file after the driver is killed (seen on
    a loaded 2-core machine)."""
    deadline = time.monotonic() + limit_s
    count, since = len(read_folder(folder)), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = len(read_folder(folder))
        if now != count:
            count, since = now, time.monotonic()
    return count


@pytest.mark.slow
def test_killed_driver_resumes_to_one_row_per_input(lfw_root, tmp_path):
    """Kill the driver (and its local Ray) once the first files are written; --resume ends with
    exactly one row per input and the scores of an uninterrupted run."""
    photos = lfw_photos(lfw_root, 10)
    listing = tmp_path / "photos.txt"
    listing.write_text("\n".join(photos) + "\n")
    out = tmp_path / "out"
    command = _faceqan("score", str(listing), "-o", str(out), "--engine", "ray", "--batch-size", "1", "--rows-per-file", "1", "-k", "2", "-l", "2", "--quiet")
    first = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list(out.glob("part-*.parquet")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    written = settled_rows(out)
    assert 1 <= written < len(photos), f"the kill came too late to test a resume ({written} rows)"
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(photos)} inputs, {written} already done" in resumed.stderr
    # Same batch size and threads as the actor (1.5 CPUs -> 2 threads): the attack's signs
    # amplify float rounding, so other thread layouts move scores by ~1e-5 (docs/distributed.md).
    local = score_paths(photos, ScoringJob("dlib").build_model(), batch_size=1, **FAST)
    assert_same_rows(read_folder(out).to_pylist(), local)
    other_seed = subprocess.run([*command, "--resume", "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert other_seed.returncode == 2 and "settings differ" in other_seed.stderr and "seed" in other_seed.stderr


@pytest.mark.slow
def test_unreachable_cluster_is_one_line(tmp_path):
    (tmp_path / "face.jpg").write_bytes(b"")
    result = subprocess.run(_faceqan("score", str(tmp_path / "face.jpg"), "-o", str(tmp_path / "out"), "--engine", "ray", "--ray-address", "127.0.0.1:1"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "cannot reach a Ray cluster at 127.0.0.1:1" in result.stderr


@pytest.mark.slow
def test_missing_ray_names_the_extra(tmp_path):
    code = "import sys; sys.modules['ray'] = None; from faceqan.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "score", str(tmp_path), "-o", str(tmp_path / "o"), "--engine", "ray"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "pip install 'faceqan[ray]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_output_must_be_a_folder(tmp_path):
    from faceqan.distributed.output import open_folder
    from faceqan.runner import RunError

    (tmp_path / "file").write_text("x")
    for output in (tmp_path / "scores.csv", tmp_path / "file"):
        with pytest.raises(RunError, match="folder of Parquet files"):
            open_folder(output, {"model": "dlib"}, resume=False)


@pytest.mark.slow
def test_actor_plan_leaves_cpu_to_preparation(local_ray):
    from faceqan.distributed import plan_actors

    assert plan_actors() == plan_actors(1)
    one, two = plan_actors(1), plan_actors(2)
    assert (one.cpus, one.threads, one.device) == (1.5, 2, "cpu")  # 2 CPUs: 0.5 left to prepare faces
    assert (two.cpus, two.threads) == (0.5, 1)
    with pytest.raises(ValueError, match="has 0 GPUs"):
        plan_actors(gpus_per_actor=1)


def test_actors_are_planned_node_by_node_on_an_uneven_cluster():
    from faceqan.distributed import plan_for_nodes

    # 16 and 4 CPUs: each actor reserves the small node's 3.5, so it hosts one and the large four.
    plan = plan_for_nodes([{"CPU": 16.0}, {"CPU": 4.0}])
    assert (plan.actors, plan.cpus, plan.threads, plan.device) == (5, 3.5, 4, "cpu")
    # A node too small to prepare and score is left to preparation.
    assert plan_for_nodes([{"CPU": 8.0}, {"CPU": 0.5}]).actors == 1
    assert plan_for_nodes([{"CPU": 2.0}]) == plan_for_nodes([{"CPU": 2.0}], actors=1)
    assert plan_for_nodes([{"CPU": 16.0}, {"CPU": 4.0}], actors=2).cpus == 3.5  # no more than the small node holds
    gpus = plan_for_nodes([{"CPU": 16.0, "GPU": 2.0}, {"CPU": 8.0, "GPU": 1.0}, {"CPU": 4.0}], gpus_per_actor=1)
    assert (gpus.actors, gpus.cpus, gpus.device) == (3, 1.0, "cuda")
    assert plan_for_nodes([{"GPU": 1.0}, {"GPU": 1.0}], gpus_per_actor=0.75).actors == 2  # not 2 // 0.75 spread over nodes
    with pytest.raises(ValueError, match="has 0 GPUs"):
        plan_for_nodes([{"CPU": 4.0}], gpus_per_actor=1)


def test_a_local_ray_takes_the_cpus_ray_detects_unless_told(monkeypatch):
    from faceqan.distributed import engine

    calls = []
    monkeypatch.setattr(engine.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(engine.ray, "init", lambda **options: calls.append(options))
    engine.connect(None, quiet=True)
    engine.connect(None, quiet=True, num_cpus=3)
    assert calls[0]["num_cpus"] is None and calls[1]["num_cpus"] == 3  # None: Ray's own, container-aware count


def test_a_retried_write_replaces_its_part_file(tmp_path):
    """Ray retries a write task that failed after its rename: the same rows, the same file."""
    import pyarrow as pa

    from faceqan.distributed.output import ParquetFolderSink

    rows = pa.table({"path": ["a.jpg", "a.jpg", "b.jpg"], "face": [0, 1, 0], "status": ["ok", "ok", "no_face"]})
    sink = ParquetFolderSink(tmp_path)
    assert sink.write([rows], None) == sink.write([rows], None)  # the first try, then its retry
    assert len(list(tmp_path.glob("part-*.parquet"))) == 1 and not list(tmp_path.glob(".*"))
    sink.write([rows.slice(2)], None)  # other rows: a file of their own
    assert len(read_folder(tmp_path)) == 4


def test_prepared_faces_travel_as_arrow_records_in_a_named_layout(lfw_root):
    """No pickle between the stages: the faces of a prepared table come back field for field,
    chips byte for byte; a table of another layout is refused."""
    import pyarrow as pa

    from faceqan.distributed.stages import prepare_images, read_faces

    job = ScoringJob()
    spec = job.model_spec()
    paths = [str(next((lfw_root / "images_deepfunneled").rglob("*.jpg"))), str(lfw_root / "missing.jpg")]
    table = prepare_images(pa.table({"path": paths}), job, spec)
    assert table.schema.field("faces").type != pa.binary()
    expected = [face for path in paths for face in job.build_preparer(spec)(path)]
    for got, want in zip(read_faces(table), expected, strict=True):
        assert (got.path, got.face, got.box, got.det_score, got.landmarks, got.status, got.error) == (want.path, want.face, want.box, want.det_score, want.landmarks, want.status, want.error)
        assert (got.chip is None and want.chip is None) or np.array_equal(got.chip, want.chip)
    with pytest.raises(ValueError, match="layout"):
        read_faces(table.set_column(2, "layout", pa.array(["faceqan-prepared-faces/0"] * 2)))
