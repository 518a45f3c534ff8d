"""The benchmark scripts run from a clean clone (tiny settings: this checks they work, not speed)."""

import ast
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script, *args):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


# Each benchmark that reads the shared data, with arguments that would otherwise start its work.
NEEDS_DATA = {
    "memory.py": ["--images", "2"],
    "lfw_accuracy.py": ["--model", "dlib"],
    "pose_proxy.py": ["--max-images", "2"],
    "degradation_check.py": ["--images", "2"],
    "make_student_set.py": ["--out", "OUT"],
    "ray_scaling.py": ["--images", "2"],
    "portability.py": ["--images", "2"],
    "pick_speed.py": ["--frames", "4"],
    "student_pool.py": ["--out", "OUT"],
    "judge_students.py": ["--no-speed", "--bootstrap", "1", "--out", "OUT"],
    "model_corpus.py": ["--out", "OUT", "--small", "--only", "tf-style"],
}


@pytest.mark.parametrize("script", sorted(NEEDS_DATA))
@pytest.mark.slow
def test_a_benchmark_without_its_data_says_what_is_missing_in_one_line(script, tmp_path):
    args = [str(tmp_path / "out") if arg == "OUT" else arg for arg in NEEDS_DATA[script]]
    environment = {**os.environ, "FACEQAN_SHARED": str(tmp_path / "nowhere")}
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(tmp_path / "nowhere") in last and "FACEQAN_SHARED" in last, result.stderr


def test_the_shared_data_is_found_through_the_environment_first(tmp_path, monkeypatch):
    from faceqan import shared_data

    monkeypatch.delenv("FACEQAN_SHARED", raising=False)
    assert shared_data.shared_root() == Path(shared_data.__file__).resolve().parents[3] / "shared"
    (tmp_path / "data" / "lfw").mkdir(parents=True)
    monkeypatch.setenv("FACEQAN_SHARED", str(tmp_path))
    with pytest.raises(shared_data.MissingData, match="pairs.txt"):
        shared_data.lfw()  # the folder alone is not LFW
    (tmp_path / "data" / "lfw" / "pairs.txt").write_text("10 300\n")
    assert shared_data.lfw() == tmp_path / "data" / "lfw"


@pytest.mark.slow
def test_speed_benchmark_agrees_with_the_official_loop():
    out = _run("speed.py", "--images", "2", "--copies", "2", "--steps", "2")
    difference = float(re.search(r"score difference: ([0-9.e+-]+)", out).group(1))
    assert difference < 1e-3
    assert re.search(r"^speedup_vs_official_loop: \d+\.\d\d$", out, re.MULTILINE)
    for label in ("official loop (transcribed)", "engine, variant official", "engine, variant paper", "forward-equivalents"):
        assert label in out


@pytest.mark.slow
def test_memory_benchmark_reports_peaks(lfw_aligned_root):
    out = _run("memory.py", "--images", "2", "4")
    assert re.search(r"^\s+4 images: 4 rows, peak RSS [0-9.]+ MiB$", out, re.MULTILINE)
    assert "peak ratio 4 / 2 images" in out


@pytest.mark.slow
def test_service_throughput_benchmark_reports_each_batch_size():
    out = _run("service_throughput.py", "--clients", "2", "--requests", "1", "--batch-sizes", "1", "2")
    for size in (1, 2):
        assert re.search(rf"^batch size +{size}: +[0-9.]+ requests/s \([0-9.]+ s, 0 failed\)$", out, re.MULTILINE)


def test_yaw_proxy_is_the_nose_offset_along_the_eye_line():
    sys.path.insert(0, str(BENCHMARKS))
    from pose_proxy import yaw_proxy

    frontal = np.array([[40.0, 50], [80, 50], [60, 70], [45, 90], [75, 90]])
    assert yaw_proxy(frontal) == pytest.approx(0.0)
    turned = frontal.copy()
    turned[2, 0] += 10  # nose a quarter of the eye distance towards the second eye
    assert yaw_proxy(turned) == pytest.approx(0.25)
    angle = np.deg2rad(30)  # in-plane rotation and scale change nothing
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert yaw_proxy(2 * turned @ rotation.T + 7) == pytest.approx(0.25)


@pytest.mark.slow
def test_pose_proxy_writes_qualities_that_evaluate_reads(tmp_path, lfw_root):
    from faceqan.evaluation.datasets import load_protocol
    from faceqan.evaluation.run import _quality_from_csv

    pairs = lfw_root / "pairs.txt"
    out = tmp_path / "pose.csv"
    _run("pose_proxy.py", "--lfw", str(pairs.parent), "--max-images", "4", "--out", str(out))
    images = load_protocol(str(pairs), max_images=4).images
    _, values = _quality_from_csv(f"pose={out}", images)
    assert len(values) == 4 and np.all(values <= 0) and np.all(np.isfinite(values))


@pytest.mark.slow
def test_adversarial_weight_at_one_ranks_like_faceqan(tmp_path):
    from scipy.stats import spearmanr

    from faceqan.evaluation.run import _quality_from_csv

    rng = np.random.default_rng(0)
    q_adv, flip = rng.uniform(0.9, 1.0, 50), rng.uniform(0.8, 1.0, 50)
    qualities = tmp_path / "qualities.csv"
    lines = ["path,faceqan,faceqan q_adv (no symmetry),s_f (from faceqan)"]
    lines += [f"img{i}.jpg,{(a * f) ** 5},{a},{f}" for i, (a, f) in enumerate(zip(q_adv, flip))]
    lines.append("missing.jpg,,,")
    qualities.write_text("\n".join(lines) + "\n")
    out = tmp_path / "weights.csv"
    _run("adversarial_weight.py", str(qualities), "--weights", "0.00001", "1", "100000", "--out", str(out))
    images = [f"img{i}.jpg" for i in range(50)] + ["missing.jpg"]
    columns = {w: _quality_from_csv(f"{w}={out}:{w}", images)[1] for w in ("w1e-05", "w1", "w100000")}
    for values in columns.values():
        assert np.isnan(values[-1]) and np.isfinite(values[:-1]).all()
    assert spearmanr(columns["w1"][:-1], (q_adv * flip) ** 5).correlation == pytest.approx(1.0)
    assert spearmanr(columns["w1e-05"][:-1], flip).correlation == pytest.approx(1.0)  # s_f alone
    assert spearmanr(columns["w100000"][:-1], q_adv).correlation == pytest.approx(1.0)  # q_adv alone


@pytest.mark.slow
def test_service_load_benchmark_runs_its_levels_and_prints_the_goals():
    out = _run("service_load.py", "--seconds", "2", "--stalled", "10", "--slow-uploads", "30", "--gone", "12", "--explains", "6", "--", "--copies", "2", "--steps", "1")
    for factor in ("1x", "2x", "4x"):
        assert re.search(rf"^{factor} \([0-9.]+/s\): \d+ requests", out, flags=re.M), out
    assert "goal at 4x only 200 and 503, no reset: pass" in out
    assert "goal no thread or memory left by disconnects: pass" in out
    for goal in ("slow uploads: peak RSS under its bound", "slow uploads: a normal request <= 1 s longer",
                 "gone clients: queue drained, at most a quarter scored"):
        assert f"goal {goal}: pass" in out, out
    # The flood must be refused in part; /score's 2x latency goal is timing, the benchmark's to
    # judge on a quiet machine (it failed here with another job on the same 2 cores), not a test's.
    flood = re.search(r"^\d+ concurrent /explain: statuses (\{.*?\});", out, flags=re.M)
    assert flood and int(ast.literal_eval(flood.group(1)).get("503", 0)) > 0, out
    assert re.search(r"^goal explain flood: 503s, /score within 2x: (pass|FAIL)$", out, flags=re.M), out
    assert "SIGTERM: the server stopped in" in out and "exit code 0" in out


@pytest.mark.slow
def test_pick_speed_benchmark_prints_fps_and_where_the_time_goes(lfw_root):
    out = _run("pick_speed.py", "--frames", "12", "--frame-step", "1")  # step 1: the goal is for step 2, not judged here
    for faces, tracks in (("1 face(s)", 1), ("3 face(s)", 3)):
        line = next(line for line in out.splitlines() if line.startswith(faces))
        assert re.search(rf"[0-9.]+ fps \({tracks} tracks\)", line) and "detect (YuNet)" in line and "score (quality method)" in line, out


def test_the_readme_headline_table_is_written_from_an_evaluation(tmp_path):
    results = Path(__file__).resolve().parents[1] / "docs" / "lfw" / "dlib-quality_dlib-errors_all-pairs" / "results.csv"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- headline -->\nold table\n<!-- /headline -->\nafter\n")
    _run("lfw_headline.py", str(results), str(readme))
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n<!-- headline -->\n") and text.endswith("<!-- /headline -->\nafter\n")
    with open(results, newline="") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    best10 = min(round(float(row["erc_auc@10"]), 1) for row in rows.values())
    faceqan10 = round(float(rows["faceqan"]["erc_auc@10"]), 1)
    shown = f"**{faceqan10:.1f}**" if faceqan10 <= best10 else f"{faceqan10:.1f}"  # bold only where best
    assert f"| **FaceQAN** | {shown} / " in text
    assert f"**{best10:.1f}** / " in text
    assert "Trained on faces of View 2" in text  # the student's row is marked
    assert f"{float(rows['serfiq']['erc_auc@80']):.1f} ({float(rows['serfiq']['edc_pauc@20']):.1f})" in text
    assert re.search(r"takes FNMR from 0\.\d{3} to 0\.\d{3}\.", text)
    readme.write_text("no markers\n")
    result = subprocess.run([sys.executable, str(BENCHMARKS / "lfw_headline.py"), str(results), str(readme)], capture_output=True, text=True)
    assert result.returncode != 0 and "no <!-- headline -->" in result.stderr


@pytest.mark.slow
def test_sharded_labelling_resumes_and_scores_failed_rows_again(tmp_path, lfw_root):
    photos = sorted((lfw_root / "images_deepfunneled").glob("A*/*.jpg"))[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in [*photos, broken]))
    output = tmp_path / "labels.csv"
    environment = {**os.environ, "FAQ": f"{sys.executable} -m faceqan"}

    def label(shards: str) -> subprocess.CompletedProcess:
        command = ["bash", str(BENCHMARKS / "label_sharded.sh"), str(listing), "dlib", str(output), shards, "cpu"]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)

    assert label("2").returncode == 0
    first = {row["path"]: row for row in csv.DictReader(output.open())}
    assert set(first) == {str(p) for p in [*photos, broken]} and output.with_name("labels.csv.settings.json").exists()
    assert first[str(broken)]["status"] != "ok" and all(first[str(p)]["status"] == "ok" for p in photos)

    # A face lost to a model error (as a GPU out of memory) is scored again by a rerun; the rest is kept.
    shard = output.with_name("labels.csv.shards") / "shard-00.txt.csv"
    rows = list(csv.DictReader(shard.open()))
    rows[0].update(status="score_error", quality="", error="OutOfMemoryError: pretend")
    rows[1].update(quality="0.123")  # a kept row is not scored again
    with shard.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    again = label("2")
    assert again.returncode == 0 and "1 failed rows to score again" in again.stderr, again.stderr
    second = {row["path"]: row for row in csv.DictReader(output.open())}
    assert len(second) == 4
    assert second[rows[0]["path"]]["status"] == "ok" and float(second[rows[0]["path"]]["quality"]) == pytest.approx(float(first[rows[0]["path"]]["quality"]), abs=1e-6)
    assert second[rows[1]["path"]]["quality"] == "0.123"

    other = label("3")
    assert other.returncode == 2 and "another list or shard count" in other.stderr


@pytest.mark.slow
def test_the_model_corpus_benchmark_builds_checks_and_tables_its_files(lfw_root, tmp_path):
    table = tmp_path / "corpus.md"
    out = _run("model_corpus.py", "--out", str(tmp_path / "corpus"), "--small", "--only", "tf-style", "mobilefacenet-relu6", "--table", str(table))
    assert "tf-style.onnx: yes" in out
    text = table.read_text()
    assert "13 files; faceqan loads 13, and 13 also give" in text  # 2 exporters x 3 opsets x 2 batches + tf-style
    assert text.count("| yes |") == 13
