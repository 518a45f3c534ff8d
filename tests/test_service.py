"""`faceqan serve`: uploads scored like files, bad uploads get their row, bad requests their
HTTP error (JSON), and limits that answer 503 / 504 / 413 instead of falling over. The app
runs under a real uvicorn on a free loopback port."""

import http.client
import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceqan.algorithm import FaceQAN
from faceqan.api import score_paths
from faceqan.methods import FaceQANMethod
from faceqan.service import QualityService
from faceqan.service.app import ServiceLimits, create_app

from helpers import face_rgb, jpeg_bytes, start_cli, write_bad_cases


@pytest.fixture(scope="module")
def scorer(dlib_model):
    return FaceQAN(dlib_model, eps=0.01, steps=1, copies=2)


@contextmanager
def running(service: QualityService, limits: ServiceLimits | None = None, api_key: str | None = None):
    """The app under uvicorn on a free loopback port, in a thread; yields (host, port)."""
    import socket

    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(service, limits, api_key), log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield listener.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        service.close()


@pytest.fixture(scope="module")
def server(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {"model": "dlib", "copies": 2}, max_pixels=10_000_000)
    with running(service, ServiceLimits(max_bytes=2_000_000)) as address:
        yield address


def request(address, method, path, body=None, headers=None, answer_headers=None):
    """(status, JSON payload); the answer's headers are put in ``answer_headers`` if given."""
    connection = http.client.HTTPConnection(*address, timeout=120)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = json.loads(response.read())
    if answer_headers is not None:
        answer_headers.update({k.lower(): v for k, v in response.getheaders()})
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


def test_bad_requests_get_json_http_errors(server):
    assert request(server, "POST", "/score", b"")[0] == 400
    status, payload = request(server, "POST", "/score?faces=some", b"xx")
    assert status == 400 and "faces must be one of" in payload["error"] and payload["id"]
    assert request(server, "POST", "/score?aligned=maybe", b"xx")[0] == 400
    status, payload = request(server, "POST", "/nowhere", b"xx")
    assert status == 404 and "error" in payload
    seen: dict = {}
    assert request(server, "GET", "/score", answer_headers=seen)[0] == 405
    assert seen["allow"] == "POST"  # the method that is allowed, as HTTP asks of a 405
    assert request(server, "PUT", "/score", b"xx")[0] == 405
    # The length alone decides: the server answers before reading a body it will refuse.
    status, payload = request(server, "POST", "/score", b"x", {"Content-Length": "2000001"})
    assert status == 413 and "over the limit" in payload["error"]


def test_health_ready_and_metrics(server):
    status, payload = request(server, "GET", "/health")
    assert status == 200 and payload == {"status": "ok"}
    status, payload = request(server, "GET", "/ready")
    assert status == 200 and payload["model"] == "dlib" and payload["settings"]["copies"] == 2 and payload["queued_faces"] == 0
    request(server, "POST", "/score", jpeg_bytes(face_rgb()))
    connection = http.client.HTTPConnection(*server, timeout=60)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    assert 'faceqan_requests_total{endpoint="/score",status="200"}' in text and "faceqan_faces_scored_total" in text
    assert "faceqan_batch_faces_bucket" in text and "faceqan_queue_faces" in text


def test_multipart_uploads_get_one_result_per_file(server):
    import httpx

    files = [("file", ("a.jpg", jpeg_bytes(face_rgb()), "image/jpeg")), ("file", ("b.txt", b"not an image", "text/plain"))]
    response = httpx.post(f"http://{server[0]}:{server[1]}/score", files=files, timeout=120)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["path"], r["status"]) for r in rows] == [("a.jpg", "ok"), ("b.txt", "decode_error")]
    response = httpx.post(f"http://{server[0]}:{server[1]}/score", files=[("other", ("a.jpg", b"x", "image/jpeg"))], timeout=60)
    assert response.status_code == 400 and "'file' field" in response.json()["error"]


class SlowFlip:
    """A quality method that takes its time (and optionally fails in an unexpected way)."""

    def __init__(self, model, seconds: float, fail: bool = False) -> None:
        from faceqan.methods import create_method

        self.inner, self.seconds, self.fail = create_method("flip", model), seconds, fail
        self.device, self.columns, self.output_columns = self.inner.device, self.inner.columns, self.inner.output_columns

    def default_batch_size(self) -> int:
        return 1

    def __call__(self, images):
        time.sleep(self.seconds)
        if self.fail:
            raise KeyError("an unexpected failure")
        return self.inner(images)


def _concurrently(address, count: int, body: bytes) -> list[tuple[int, dict, dict]]:
    answers = []

    def send():
        connection = http.client.HTTPConnection(*address, timeout=120)
        connection.request("POST", "/score", body=body)
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read()), dict(response.getheaders())))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.slow
def test_a_full_queue_answers_503_with_retry_after_and_a_slow_one_504(dlib_model):
    body = jpeg_bytes(face_rgb())
    service = QualityService(dlib_model, SlowFlip(dlib_model, 1.5), {}, max_batch=1, max_queue=1)
    with running(service, ServiceLimits(max_decodes=8)) as address:
        answers = _concurrently(address, 4, body)
    statuses = sorted(status for status, _, _ in answers)
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}
    refused = next(a for a in answers if a[0] == 503)
    assert refused[2].get("retry-after") == "2" and "overloaded" in refused[1]["error"]
    service = QualityService(dlib_model, SlowFlip(dlib_model, 3.0), {}, max_batch=1)
    with running(service, ServiceLimits(deadline=1.0)) as address:
        [(status, payload, _)] = _concurrently(address, 1, body)
    assert status == 504 and "deadline" in payload["error"]


def test_an_unexpected_error_is_a_json_500_with_an_id(dlib_model):
    service = QualityService(dlib_model, SlowFlip(dlib_model, 0.0, fail=True), {}, max_batch=1)
    with running(service) as address:
        [(status, payload, _)] = _concurrently(address, 1, jpeg_bytes(face_rgb()))
    assert status == 500 and payload["id"] in payload["error"]


def test_the_api_key_is_required_when_set(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {})
    with running(service, api_key="s3cret") as address:
        seen: dict = {}
        assert request(address, "POST", "/score", b"xx", answer_headers=seen)[0] == 401
        assert seen["www-authenticate"].startswith("Bearer")
        assert request(address, "POST", "/score", b"xx", {"X-API-Key": "wrong"})[0] == 401
        assert request(address, "POST", "/score", jpeg_bytes(face_rgb()), {"X-API-Key": "s3cret"})[0] == 200
        assert request(address, "POST", "/score", jpeg_bytes(face_rgb()), {"Authorization": "Bearer s3cret"})[0] == 200
        assert request(address, "GET", "/health")[0] == 200  # health needs no key
        status, anonymous = request(address, "GET", "/ready")
        assert status == 200 and anonymous == {"status": "ready", "queued_faces": 0}  # no settings, no file paths
        status, detailed = request(address, "GET", "/ready", headers={"X-API-Key": "s3cret"})
        assert status == 200 and "settings" in detailed and detailed["model"] == "dlib"


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


@pytest.mark.slow
def test_the_serve_command_finishes_requests_in_flight_on_sigterm_and_exits_0():
    import re
    import signal
    import subprocess

    process = start_cli("serve", "--port", "0", "--copies", "10", "--steps", "5", "--landmarks", "refined", "--batch-size", "4", "--max-wait-ms", "2", "--quiet", stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        match = re.search(r"http://([\d.]+):(\d+)", line)
        assert match, line
        address = (match.group(1), int(match.group(2)))
        status, payload = request(address, "GET", "/ready")
        assert status == 200 and payload["settings"]["steps"] == 5 and payload["settings"]["landmarks"] == "refined"
        answers = []
        sender = threading.Thread(target=lambda: answers.extend(_concurrently(address, 1, jpeg_bytes(face_rgb()))))
        sender.start()
        time.sleep(0.3)  # the request is in flight (FaceQAN takes about a second)
        process.send_signal(signal.SIGTERM)
        sender.join(timeout=120)
        assert process.wait(timeout=60) == 0
        assert answers and answers[0][0] == 200 and answers[0][1]["results"][0]["status"] == "ok"
    finally:
        process.kill()


def test_a_public_address_without_a_key_is_refused(capsys):
    from faceqan.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "without an API key" in capsys.readouterr().err


def test_explain_returns_the_noise_panel_as_png(server):
    connection = http.client.HTTPConnection(*server, timeout=120)
    connection.request("POST", "/explain?name=face.jpg", body=jpeg_bytes(face_rgb()))
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200 and response.getheader("content-type") == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
    status, payload = request(server, "POST", "/explain", jpeg_bytes(np.full((64, 64, 3), 120, np.uint8)))
    assert status == 422 and payload["error"].startswith("no_face")


@pytest.mark.browser
@pytest.mark.slow
def test_the_web_page_scores_an_lfw_photo_like_the_api(server, lfw_root):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from browser import chrome_driver

    photo = lfw_root / "images_deepfunneled" / "Colin_Powell" / "Colin_Powell_0038.jpg"
    status, payload = request(server, "POST", "/score?name=Colin_Powell_0038.jpg", photo.read_bytes())
    expected = payload["results"][0]["quality"]
    driver = chrome_driver()
    try:
        driver.get(f"http://{server[0]}:{server[1]}/")
        driver.find_element(By.ID, "files").send_keys(str(photo))
        shown = WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".quality"))[0]
        assert float(shown.get_attribute("data-quality")) == pytest.approx(expected, abs=1e-7)
        assert shown.text == f"{expected:.4f}"
        WebDriverWait(driver, 120).until(lambda d: d.execute_script("const i = document.querySelector('.face img'); return i && i.complete && i.naturalWidth > 0"))
        assert "0-100" in driver.find_element(By.CSS_SELECTOR, ".meaning").text
        assert driver.find_element(By.ID, "model").text == "dlib"
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()


def test_the_docs_page_needs_nothing_from_the_internet(server):
    connection = http.client.HTTPConnection(*server, timeout=60)
    connection.request("GET", "/docs")
    page = connection.getresponse().read().decode()
    assets = [part.split('"')[1] for part in page.split() if part.startswith(("src=", "href="))]
    assert assets and all(url.startswith("/") for url in assets), assets
    for url in assets:
        connection = http.client.HTTPConnection(*server, timeout=60)
        connection.request("GET", url)
        assert connection.getresponse().status == 200, url
    status, schema = request(server, "GET", "/openapi.json")
    assert status == 200 and "/score" in schema["paths"] and "/explain" in schema["paths"]


def _metric(address, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when absent)."""
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("{", 1)[1].split("}", 1)[0] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
def test_explain_needs_the_key_and_is_refused_when_overloaded(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {})
    service.explain = lambda data, name, aligned, cancelled: time.sleep(1.5) or b"\x89PNG"  # a slow explanation
    with running(service, ServiceLimits(max_decodes=1), api_key="k") as address:
        assert request(address, "POST", "/explain", b"xx")[0] == 401
        answers = []

        def send():
            connection = http.client.HTTPConnection(*address, timeout=60)
            connection.request("POST", "/explain", body=b"image", headers={"X-API-Key": "k"})
            response = connection.getresponse()
            answers.append((response.status, response.getheader("retry-after")))

        threads = [threading.Thread(target=send) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    statuses = sorted(status for status, _ in answers)
    # One explains, one waits for its slot, the others are refused at once.
    assert statuses.count(200) == 2 and statuses.count(503) == 3, answers
    assert all(retry == "2" for status, retry in answers if status == 503)


def test_a_streamed_body_over_the_limit_is_413(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {})
    with running(service, ServiceLimits(max_bytes=10_000)) as address:
        connection = http.client.HTTPConnection(*address, timeout=60)
        chunks = (b"x" * 4096 for _ in range(8))  # no Content-Length: chunked transfer
        connection.request("POST", "/score", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413 and "limit" in json.loads(response.read())["error"]


def test_a_body_that_does_not_arrive_in_time_is_408(dlib_model, scorer):
    import socket

    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {})
    with running(service, ServiceLimits(read_timeout=0.5)) as address:
        with socket.create_connection(address, timeout=30) as client:
            client.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            answer = b""
            while b"}" not in answer and (chunk := client.recv(65536)):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive" in answer, answer


def test_a_500_is_counted_in_the_metrics(dlib_model):
    service = QualityService(dlib_model, SlowFlip(dlib_model, 0.0, fail=True), {}, max_batch=1)
    with running(service) as address:
        before = _metric(address, "faceqan_requests_total", endpoint="/score", status="500")
        [(status, _, _)] = _concurrently(address, 1, jpeg_bytes(face_rgb()))
        assert status == 500
        assert _metric(address, "faceqan_requests_total", endpoint="/score", status="500") == before + 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the worker's death, on purpose
def test_a_dead_batcher_makes_ready_and_requests_answer_503_at_once(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {}, max_batch=1)

    def die(_size: int) -> None:
        raise SystemExit("the worker thread ends here")  # outside the batch's own try: kills the worker

    service._batcher.on_batch = None
    with running(service) as address:
        assert request(address, "GET", "/ready")[0] == 200
        service._batcher.on_batch = die  # create_app set its own; replace it after
        started = time.perf_counter()
        status, payload = request(address, "POST", "/score", jpeg_bytes(face_rgb()))
        assert status == 503 and "not scoring" in payload["error"]  # the request that was waiting
        assert request(address, "GET", "/ready")[0] == 503
        status, payload = request(address, "GET", "/health")
        assert status == 503 and payload["status"] == "dead"  # an orchestrator restarts the process
        started = time.perf_counter()
        status, _ = request(address, "POST", "/score", jpeg_bytes(face_rgb()))
        assert status == 503 and time.perf_counter() - started < 1.0  # fails fast, never blocks
        assert request(address, "POST", "/explain", jpeg_bytes(face_rgb()))[0] == 503
        assert _metric(address, "faceqan_requests_total", endpoint="/score", status="503") == 2


@pytest.mark.slow
def test_bodies_held_across_requests_are_bounded(dlib_model, scorer):
    import socket

    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {})
    with running(service, ServiceLimits(max_bytes=90_000, max_buffered_bytes=100_000)) as address:
        with socket.create_connection(address, timeout=30) as slow:  # declares 80 kB, sends 10 bytes
            slow.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 80000\r\n\r\n" + b"x" * 10)
            time.sleep(0.3)
            status, payload = request(address, "POST", "/score", b"y" * 30_000)
            assert status == 503 and "bytes of uploads are held" in payload["error"]
        time.sleep(0.3)  # the slow client went away: its share is given back
        assert request(address, "POST", "/score", b"y" * 30_000)[0] == 200


@pytest.mark.slow
def test_a_full_queue_refuses_before_the_body_arrives(dlib_model):
    import socket

    service = QualityService(dlib_model, SlowFlip(dlib_model, 2.0), {}, max_batch=1, max_queue=1)
    with running(service, ServiceLimits(read_timeout=30)) as address:
        busy = threading.Thread(target=_concurrently, args=(address, 1, jpeg_bytes(face_rgb())))
        busy.start()
        while service.queued == 0:
            time.sleep(0.01)
        started = time.perf_counter()
        with socket.create_connection(address, timeout=30) as client:  # headers only, no body
            client.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            answer = b""
            while b"}" not in answer and (chunk := client.recv(65536)):
                answer += chunk
            waited = time.perf_counter() - started
        busy.join()
    assert answer.startswith(b"HTTP/1.1 503") and b"faces are waiting" in answer and waited < 1.5, answer


@pytest.mark.slow
def test_connections_beyond_max_connections_get_503(dlib_model):
    import socket

    import uvicorn

    from faceqan.cli import build_parser, uvicorn_config

    service = QualityService(dlib_model, SlowFlip(dlib_model, 1.5), {}, max_batch=1)
    args = build_parser().parse_args(["serve", "--max-connections", "2", "--quiet"])  # uvicorn counts the connection itself
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(create_app(service), args))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        statuses = []

        def send():
            connection = http.client.HTTPConnection(*listener.getsockname()[:2], timeout=60)
            connection.request("POST", "/score", body=jpeg_bytes(face_rgb()))
            statuses.append(connection.getresponse().status)

        first = threading.Thread(target=send)
        first.start()
        time.sleep(0.5)
        send()
        first.join()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        service.close()
    assert sorted(statuses) == [200, 503]


def _batch_counter(service: QualityService) -> list[int]:
    """The sizes of the batches the service scores from now on (create_app hooks on_batch: wrap it)."""
    sizes, inner = [], service._batcher.on_batch
    service._batcher.on_batch = lambda size: (sizes.append(size), inner and inner(size))
    return sizes


@pytest.mark.slow
def test_requests_past_their_deadline_are_not_scored(dlib_model):
    service = QualityService(dlib_model, SlowFlip(dlib_model, 1.0), {}, max_batch=1)
    with running(service, ServiceLimits(deadline=0.5, max_decodes=8)) as address:
        sizes = _batch_counter(service)
        answers = _concurrently(address, 3, jpeg_bytes(face_rgb()))
        deadline = time.monotonic() + 10
        while service.queued and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.2)  # anything still to run would have started by now
    assert [status for status, _, _ in answers] == [504] * 3
    assert len(sizes) == 1 and service.queued == 0  # the one batch already running; the two waiting were dropped


@pytest.mark.slow
def test_work_for_clients_that_went_away_is_dropped(dlib_model):
    import socket

    service = QualityService(dlib_model, SlowFlip(dlib_model, 1.0), {}, max_batch=1)
    body = jpeg_bytes(face_rgb())
    with running(service, ServiceLimits(max_decodes=8)) as address:
        sizes = _batch_counter(service)
        for _ in range(4):  # each sends its upload and hangs up without waiting for the answer
            with socket.create_connection(address) as client:
                client.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                time.sleep(0.05)
        time.sleep(3.0)
        assert service.queued == 0 and _metric(address, "faceqan_requests_total", endpoint="/score", status="499") >= 3
    assert len(sizes) <= 1  # at most the batch that had started when its client left


def test_a_decode_slot_is_held_until_its_work_ends(dlib_model):
    """A 504 answers at the deadline, but the slot its decoding took comes back only when the
    thread doing it ends: --max-decodes bounds the work, not only the answered requests."""
    service = QualityService(dlib_model, SlowFlip(dlib_model, 0.0), {}, max_batch=1)
    release = threading.Event()
    real_prepare = service._prepare
    service._prepare = lambda *args: release.wait(10) and real_prepare(*args)  # decoding stalls until released
    with running(service, ServiceLimits(deadline=0.3, max_decodes=1)) as address:
        [(status, _, _)] = _concurrently(address, 1, jpeg_bytes(face_rgb()))
        assert status == 504
        assert request(address, "POST", "/score", jpeg_bytes(face_rgb()))[0] == 504  # waits for the held slot
        release.set()
        time.sleep(0.3)
        assert request(address, "POST", "/score", jpeg_bytes(face_rgb()))[0] == 200


def test_the_openapi_page_documents_the_query_parameters_and_the_key(dlib_model, scorer):
    service = QualityService(dlib_model, FaceQANMethod.from_scorer(scorer), {})
    with running(service, api_key="k") as address:
        connection = http.client.HTTPConnection(*address, timeout=30)
        connection.request("GET", "/openapi.json")
        spec = json.loads(connection.getresponse().read())
    parameters = {p["name"]: p for p in spec["paths"]["/score"]["post"]["parameters"]}
    assert {"faces", "aligned", "name"} <= set(parameters) and parameters["aligned"]["schema"]["type"] == "boolean"
    assert {"faces", "aligned", "name"} - {"faces"} <= {p["name"] for p in spec["paths"]["/explain"]["post"]["parameters"]}
    schemes = spec["components"]["securitySchemes"]
    assert any(s.get("type") == "apiKey" and s.get("name") == "X-API-Key" for s in schemes.values())
    assert spec["paths"]["/score"]["post"]["security"] and spec["paths"]["/explain"]["post"]["security"]
    # /docs can send a file: the bodies are declared (raw image or multipart files), faces is an enum,
    # and /explain answers image/png.
    assert parameters["faces"]["schema"]["enum"] == ["largest", "all", "error"]
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]
    assert body["image/*"]["schema"]["format"] == "binary" and body["multipart/form-data"]["schema"]["properties"]["file"]["type"] == "array"
    assert spec["paths"]["/explain"]["post"]["requestBody"]["content"]["image/*"]["schema"]["format"] == "binary"
    assert "image/png" in spec["paths"]["/explain"]["post"]["responses"]["200"]["content"]


def _readme_service_lines() -> list[str]:
    """The curl lines of README.md's Service section."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Service") : text.index("## Many machines")]
    return [line.strip() for line in section.splitlines() if line.strip().startswith("curl ")]


@pytest.mark.slow
def test_the_readmes_service_lines_answer_as_it_says_at_the_defaults(tmp_path):
    """`faceqan serve` as README starts it (its defaults: one face at a time on the CPU, none
    waiting beyond it), under its own uvicorn; each curl line of README runs as written, on
    real files, and answers as README says."""
    import json
    import re
    import subprocess

    from helpers import write_two_faces

    for name in ("photo", "a", "b", "c"):
        (tmp_path / f"{name}.jpg").write_bytes(jpeg_bytes(face_rgb()))
    write_two_faces(tmp_path / "group.jpg")
    process = start_cli("serve", "--port", "0", stderr=subprocess.PIPE, text=True)
    try:
        match = re.search(r"http://([\d.]+):(\d+)", process.stderr.readline())
        assert match
        lines = _readme_service_lines()
        assert len(lines) == 5
        answers = []
        for line in lines:
            for command in line.split("#")[0].split(";"):
                command = command.strip().replace("127.0.0.1:8080", f"{match.group(1)}:{match.group(2)}")
                done = subprocess.run(["bash", "-c", command + " --silent --show-error --write-out '\\n%{http_code}'"],
                                      cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
                body, _, status = done.stdout.rpartition("\n")
                answers.append((command, int(status), body))
        one, multipart, group, explain, ready, metrics = answers
        for (command, status, body), faces in ((one, 1), (multipart, 3), (group, 2)):
            assert status == 200, (command, body)
            rows = json.loads(body)["results"]
            assert len(rows) == faces and all(row["status"] == "ok" for row in rows), command
        assert explain[1] == 200 and (tmp_path / "noise.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert ready[1] == 200 and json.loads(ready[2])["status"] == "ready"
        assert metrics[1] == 200 and "faceqan_queue_faces" in metrics[2]
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_an_idle_batcher_admits_a_job_larger_than_its_queue_and_a_busy_one_refuses_it():
    from faceqan.batcher import Batcher, Overloaded

    started, release = threading.Event(), threading.Event()

    def run(items):
        started.set()
        release.wait(10)
        return items

    batcher = Batcher(run, max_items=8, max_pending=1)
    results = []
    worker = threading.Thread(target=lambda: results.append(batcher.submit([1, 2, 3])))
    worker.start()
    try:
        assert started.wait(10)  # three faces against a queue of one: admitted, since nothing waited
        with pytest.raises(Overloaded, match="3 faces are waiting"):
            batcher.submit([4])
    finally:
        release.set()
        worker.join(10)
        batcher.close()
    assert results == [[1, 2, 3]]


def test_chips_1_adds_each_faces_aligned_crop_to_its_row_and_rows_stay_as_they_were_without_it(server):
    import base64

    import cv2

    status, plain = request(server, "POST", "/score?faces=all", jpeg_bytes(face_rgb()))
    status_chips, with_chips = request(server, "POST", "/score?faces=all&chips=1", jpeg_bytes(face_rgb()))
    assert status == status_chips == 200
    [row], [chip_row] = plain["results"], with_chips["results"]
    assert "chip_png" not in row and {k: v for k, v in chip_row.items() if k != "chip_png"} == row
    png = base64.b64decode(chip_row["chip_png"].removeprefix("data:image/png;base64,"))
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (150, 150, 3)


def test_a_request_past_the_face_limit_is_413_and_one_within_it_runs_alone(dlib_model, scorer):
    from faceqan.service.core import RequestError

    service = QualityService(dlib_model, scorer, {}, max_batch=1, max_queue=1, max_request_faces=2)
    try:
        with pytest.raises(RequestError, match="3 faces in one request; at most 2") as refused:
            service.score_prepared([object()] * 3)
        assert refused.value.status == 413
    finally:
        service.close()


@pytest.mark.slow
@pytest.mark.browser
def test_five_photos_given_to_the_page_at_once_get_five_results_at_the_defaults(tmp_path):
    """The page against `faceqan serve` at its defaults (a queue of one face on the CPU): it sends
    photos one after another and retries a 503 after Retry-After, so none is lost."""
    import re
    import subprocess

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from browser import chrome_driver

    photos = []
    for i in range(5):
        photos.append(tmp_path / f"photo_{i}.jpg")
        photos[-1].write_bytes(jpeg_bytes(np.clip(face_rgb().astype(int) + 8 * i, 0, 255).astype(np.uint8)))
    process = start_cli("serve", "--port", "0", stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        match = re.search(r"http://([\d.]+):(\d+)", process.stderr.readline())
        assert match
        driver = chrome_driver()
        driver.get(f"http://{match.group(1)}:{match.group(2)}/")
        driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in photos))
        WebDriverWait(driver, 240).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".quality")) == 5 and len(d.find_elements(By.CSS_SELECTOR, ".face img:not(.chip)")) == 5)
        assert driver.find_elements(By.CSS_SELECTOR, ".bad") == []
        # Each face's aligned crop (dlib's 150 px chip) beside its score, and its noise panel.
        sizes = driver.execute_script("return [...document.querySelectorAll('img.chip')].map(i => i.complete ? i.naturalWidth : 0)")
        assert sizes == [150] * 5
        assert sorted(box.get_attribute("data-file") for box in driver.find_elements(By.CSS_SELECTOR, ".face")) == [p.name for p in photos]
    finally:
        if driver is not None:
            driver.quit()
        process.terminate()
        process.wait(timeout=60)


def test_serve_defaults_outlast_load_balancers_and_let_every_request_finish():
    from faceqan.cli import build_parser, uvicorn_config

    config = uvicorn_config(object(), build_parser().parse_args(["serve"]))
    assert config.timeout_keep_alive > 60  # common load balancers' idle time-out: they close first
    assert config.timeout_graceful_shutdown == 120.0  # --deadline's: a request in flight is never cut short
    config = uvicorn_config(object(), build_parser().parse_args(["serve", "--deadline", "30", "--grace", "5", "--keep-alive", "620"]))
    assert (config.timeout_graceful_shutdown, config.timeout_keep_alive) == (5.0, 620.0)


def test_a_malformed_content_length_is_400_in_the_body_reader():
    import asyncio

    from faceqan.service.core import RequestError
    from faceqan.service.uploads import read_body

    class Declared:
        headers = {"content-length": "12abc"}

    with pytest.raises(RequestError, match="malformed Content-Length") as refused:
        asyncio.run(read_body(Declared(), 100, lambda _n: None))
    assert refused.value.status == 400


def test_decode_slots_follow_the_cpus_this_process_may_use(monkeypatch):
    import os

    from faceqan.devices import usable_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3, 4, 5, 6, 7})
    real_read = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "150000 100000\n" if str(self) == "/sys/fs/cgroup/cpu.max" else real_read(self, *a, **k))
    assert usable_cpus() == 2  # a container quota of 1.5 CPUs on an 8-core host
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "max 100000\n" if str(self) == "/sys/fs/cgroup/cpu.max" else real_read(self, *a, **k))
    assert usable_cpus() == 8


@pytest.mark.slow
def test_sigterm_first_drains_with_ready_503_while_requests_are_still_served_then_exits_0():
    import re
    import signal
    import subprocess

    process = start_cli("serve", "--port", "0", "--drain", "3", "--copies", "2", "--steps", "1", "--quiet", stderr=subprocess.PIPE, text=True)
    try:
        match = re.search(r"http://([\d.]+):(\d+)", process.stderr.readline())
        assert match
        address = (match.group(1), int(match.group(2)))
        assert request(address, "GET", "/ready")[0] == 200
        signalled = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        status, payload = request(address, "GET", "/ready")
        assert status == 503 and payload["status"] == "draining"
        assert request(address, "GET", "/health")[0] == 200
        status, payload = request(address, "POST", "/score", jpeg_bytes(face_rgb()))
        assert status == 200 and payload["results"][0]["status"] == "ok"  # still served while draining
        assert process.wait(timeout=60) == 0
        assert time.perf_counter() - signalled >= 3
    finally:
        process.kill()


def test_idle_face_preparers_are_bounded_after_a_burst(dlib_model, scorer):
    from concurrent.futures import ThreadPoolExecutor

    from faceqan.service import core

    service = QualityService(dlib_model, scorer, {}, max_batch=1)
    made = []
    original = service.new_preparer
    barrier = threading.Barrier(core.MAX_IDLE_PREPARERS + 4)

    def new_preparer(aligned, faces):
        made.append(1)
        barrier.wait(30)  # all threads need a preparer at once: each makes its own
        return original(aligned, faces)

    service.new_preparer = new_preparer
    try:
        with ThreadPoolExecutor(core.MAX_IDLE_PREPARERS + 4) as pool:
            list(pool.map(lambda _: service.prepare(jpeg_bytes(face_rgb())), range(core.MAX_IDLE_PREPARERS + 4)))
        assert len(made) == core.MAX_IDLE_PREPARERS + 4
        assert service._idle[(False, "largest")].qsize() == core.MAX_IDLE_PREPARERS
    finally:
        service.close()


def test_a_callers_request_id_is_kept_and_every_answer_carries_one(server):
    seen: dict = {}
    status, payload = request(server, "POST", "/score?faces=some", b"xx", {"X-Request-ID": "lb-7f3a.42"}, answer_headers=seen)
    assert status == 400 and payload["id"] == seen["x-request-id"] == "lb-7f3a.42"
    seen.clear()
    status, payload = request(server, "POST", "/score?faces=some", b"xx", {"X-Request-ID": "no spaces <allowed>"}, answer_headers=seen)
    assert status == 400 and payload["id"] == seen["x-request-id"] != "no spaces <allowed>"
    seen.clear()
    assert request(server, "GET", "/health", answer_headers=seen)[0] == 200 and len(seen["x-request-id"]) == 12
