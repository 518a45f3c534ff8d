"""`faceqan serve`: uploads scored like files, bad uploads get their row, bad requests their HTTP error."""

import http.client
import json
import threading

import numpy as np
import pytest
from PIL import Image

from faceqan.algorithm import FaceQAN
from faceqan.api import score_paths
from faceqan.methods import FaceQANMethod
from faceqan.service import QualityService, make_server

from helpers import face_rgb, jpeg_bytes, start_cli, write_bad_cases


@pytest.fixture(scope="module")
def scorer(dlib_model):
    return FaceQAN(dlib_model, eps=0.01, steps=1, copies=2)


@pytest.fixture(scope="module")
def server(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {"model": "dlib", "copies": 2}, max_pixels=10_000_000)
    server = make_server(service, port=0, max_bytes=2_000_000, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


def request(address, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(*address, timeout=120)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


def test_an_upload_scores_like_the_same_file(server, dlib_model, scorer, tmp_path):
    path = tmp_path / "face.jpg"
    path.write_bytes(jpeg_bytes(face_rgb()))
    status, payload = request(server, "POST", "/score?name=face.jpg", path.read_bytes())
    assert status == 200
    (row,) = payload["results"]
    (expected,) = score_paths([path], dlib_model, scorer)
    assert row["status"] == "ok" and row["path"] == "face.jpg"
    assert row["quality"] == pytest.approx(expected["quality"], rel=1e-6)
    assert row["flip_sim"] == pytest.approx(expected["flip_sim"], rel=1e-6)
    assert row["landmarks"] == expected["landmarks"] == "refined"  # the server's and the API's default


def test_every_face_with_faces_all(server):
    rgb = face_rgb()
    two = np.concatenate([rgb, rgb[:, ::-1]], axis=1)
    status, payload = request(server, "POST", "/score?faces=all", jpeg_bytes(two))
    assert status == 200
    assert [row["face"] for row in payload["results"]] == [0, 1]
    assert all(row["status"] == "ok" for row in payload["results"])
    status, payload = request(server, "POST", "/score?faces=error", jpeg_bytes(two))
    assert status == 200 and payload["results"][0]["status"] == "many_faces"


def test_bad_uploads_are_rows_with_their_status(server, tmp_path):
    expected = write_bad_cases(tmp_path)
    for name, wanted in expected.items():
        if name == "empty.jpg":
            continue  # an empty body is a bad request, below
        status, payload = request(server, "POST", f"/score?name={name}", (tmp_path / name).read_bytes())
        assert status == 200, name
        (row,) = payload["results"]
        assert row["status"] == wanted and row["error"], name
        assert row.get("quality") is None


def test_aligned_uploads_skip_detection(server, tmp_path):
    chip = np.asarray(Image.fromarray(face_rgb()[20:220, 140:340]).resize((150, 150)))
    status, payload = request(server, "POST", "/score?aligned=1", jpeg_bytes(chip))
    assert status == 200 and payload["results"][0]["status"] == "ok"
    status, payload = request(server, "POST", "/score?aligned=1", jpeg_bytes(np.zeros((150, 100, 3), np.uint8)))
    assert payload["results"][0]["status"] == "bad_image"


def test_bad_requests_get_http_errors(server):
    assert request(server, "POST", "/score", b"")[0] == 400
    status, payload = request(server, "POST", "/score?faces=some", b"xx")
    assert status == 400 and "faces must be one of" in payload["error"]
    assert request(server, "POST", "/score?aligned=maybe", b"xx")[0] == 400
    assert request(server, "POST", "/nowhere", b"xx")[0] == 404
    assert request(server, "GET", "/score")[0] == 404
    assert request(server, "PUT", "/score", b"xx")[0] == 405
    # The length alone decides: the server answers before reading a body it will refuse.
    status, payload = request(server, "POST", "/score", b"x", {"Content-Length": "2000001"})
    assert status == 413 and "over the limit" in payload["error"]


def test_health_names_the_model_and_settings(server):
    status, payload = request(server, "GET", "/health")
    assert status == 200 and payload["status"] == "ok" and payload["model"] == "dlib" and payload["settings"]["copies"] == 2


def test_concurrent_uploads_all_get_their_own_answer(server):
    rgb = face_rgb()
    uploads = {f"v{i}": jpeg_bytes(np.clip(rgb.astype(int) + 10 * i, 0, 255).astype(np.uint8)) for i in range(3)}
    answers = {}

    def send(name):
        answers[name] = request(server, "POST", f"/score?name={name}", uploads[name])

    threads = [threading.Thread(target=send, args=(name,)) for name in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answers[name][0] == 200 and answers[name][1]["results"][0]["path"] == name for name in uploads)
    assert len({answers[name][1]["results"][0]["quality"] for name in uploads}) == 3


def test_concurrent_requests_are_scored_in_one_batch_each_with_its_own_rows(dlib_model, scorer):
    method = FaceQANMethod.from_scorer(scorer)
    batch_sizes = []

    def counting(images):
        batch_sizes.append(images.shape[0])
        return method(images)

    service = QualityService(dlib_model, counting, {}, max_batch=8, max_wait=1.0)
    rgb = face_rgb()
    uploads = {f"v{i}": jpeg_bytes(np.clip(rgb.astype(int) + 10 * i, 0, 255).astype(np.uint8)) for i in range(3)}
    answers = {}
    threads = [threading.Thread(target=lambda n=name: answers.update({n: service.score(uploads[n], n)})) for name in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    service.close()
    assert max(batch_sizes) > 1 and sum(batch_sizes) == 3
    alone = QualityService(dlib_model, method, {})
    for name, rows in answers.items():
        assert [row["path"] for row in rows] == [name]
        assert rows[0]["quality"] == pytest.approx(alone.score(uploads[name], name)[0]["quality"], rel=1e-4)
    alone.close()


def test_preparer_options_reach_the_detector(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {}, landmarks="refined", min_det_score=0.8)
    preparer = service.new_preparer(False, "largest")
    assert preparer.detector.refine and preparer.min_det_score == 0.8


def test_the_serve_command_starts_answers_and_stops_on_ctrl_c():
    import re
    import signal
    import subprocess

    process = start_cli("serve", "--port", "0", "--copies", "2", "--steps", "1", "--landmarks", "refined", "--batch-size", "4", "--max-wait-ms", "2", "--quiet", stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        match = re.search(r"http://([\d.]+):(\d+)", line)
        assert match, line
        status, payload = request((match.group(1), int(match.group(2))), "GET", "/health")
        assert status == 200 and payload["settings"]["steps"] == 1 and payload["settings"]["landmarks"] == "refined"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
