"""Load test of `faceqan serve`, on the loopback interface only, bounded in requests and time.

    python benchmarks/service_load.py [--seconds 15] [--stalled 50] [--slow-uploads 500] [--gone 200] [--explains 50] [-- SERVE OPTIONS...]

Starts `faceqan serve --port 0` (with the options after ``--``, e.g. ``--copies 2 --steps 1``)
as a subprocess, measures its capacity (one client, requests back to back), then sends
requests at 1x, 2x and 4x that rate (open loop, each level ``--seconds`` long) and prints per
level the throughput, p50 / p95 / p99 latency and the count of each status. Then: 50 stalled
connections (headers never finished) while a normal request is timed, and 20 clients that
disconnect mid-upload, watching the server's threads and memory. Then the hostile cases:
``--slow-uploads`` connections each declaring a 1 MB body and sending it at 1 byte per second
for 5 s; ``--gone`` clients that send a face and hang up before the answer; ``--explains``
concurrent /explain requests while /score requests are timed. Ends with pass / fail lines:
- at 4x every response is a 200 or a 503 (no other 5xx, no reset connection);
- the p99 latency of the 200s at 4x is at most twice the p99 at 1x;
- with the stalled connections open a normal request takes at most 1 s longer than alone;
- the disconnecting clients leave no thread and at most 50 MB of memory behind;
- during the slow uploads the server's peak RSS stays under its RSS before plus the byte budget
  (256 MiB) plus 100 MiB, and a normal request takes at most 1 s longer than alone;
- after the gone clients the queue is empty and at most a quarter of them had their face
  scored (the server's own metrics: 499s and scoring batches);
- during the /explain flood some get 503 and the /score median stays within 2x of alone;
and prints the server's peak RSS.
"""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import face_rgb, jpeg_bytes  # noqa: E402


def post(address: tuple[str, int], body: bytes) -> tuple[int | str, float]:
    """(status or error name, seconds) of one POST /score."""
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection(*address, timeout=120)
        connection.request("POST", "/score", body=body)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status, time.perf_counter() - started
    except (ConnectionError, OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, time.perf_counter() - started


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def level(address, body: bytes, rate: float, seconds: float) -> tuple[list[tuple[int | str, float]], float]:
    """Open-loop arrivals at ``rate`` per second for ``seconds``; every answer, and the wall time until the last."""
    count = max(1, int(rate * seconds))
    results: list[tuple[int | str, float]] = []
    with ThreadPoolExecutor(max_workers=min(256, count)) as pool:
        futures = []
        start = time.perf_counter()
        for i in range(count):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            futures.append(pool.submit(post, address, body))
        results = [f.result() for f in futures]
    return results, time.perf_counter() - start


def summary(name: str, results: list[tuple[int | str, float]], seconds: float) -> float:
    """Print a level's figures; return the p99 latency of its 200s (NaN if none)."""
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    ok = np.array([t for s, t in results if s == 200])
    p = np.percentile(ok, [50, 95, 99]) if ok.size else [float("nan")] * 3
    print(f"{name}: {len(results)} requests in {seconds:.1f} s, {ok.size / seconds:.2f} ok/s, p50 {p[0]:.2f} s, p95 {p[1]:.2f} s, p99 {p[2]:.2f} s, statuses {statuses}")
    return float(p[2])


def metrics(address: tuple[str, int]) -> dict[str, float]:
    """The server's /metrics samples, by name with labels."""
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def slow_uploads(address, body: bytes, count: int, server_pid: int, single: float) -> dict[str, bool]:
    """``count`` connections declaring 1 MB and sending 1 byte per second for 5 s; a normal request timed among them."""
    before = proc_status(server_pid)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(address)
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        sockets.append(sock)
    timed = []
    for second in range(5):
        for sock in sockets:
            try:
                sock.send(b"x")
            except OSError:
                pass  # refused at once (503): the budget of bytes held is spent
        if second == 2:
            timed.append(post(address, body))
        time.sleep(1)
    after = proc_status(server_pid)
    for sock in sockets:
        sock.close()
    bound = before["VmRSS"] + (256 + 100) * 1024
    status, seconds = timed[0]
    print(f"{count} slow uploads: server peak RSS {after['VmHWM'] / 1024:.0f} MiB (bound {bound / 1024:.0f}), a normal request {seconds:.2f} s (alone {single:.2f} s), status {status}")
    return {"slow uploads: peak RSS under its bound": after["VmHWM"] <= bound, "slow uploads: a normal request <= 1 s longer": status == 200 and seconds <= single + 1.0}


def gone_clients(address, body: bytes, count: int) -> dict[str, bool]:
    """``count`` clients that send a face and hang up; the server's metrics say what it did for them."""
    before = metrics(address)
    for _ in range(count):
        with socket.create_connection(address) as sock:
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    deadline = time.monotonic() + 60
    while (now := metrics(address)).get("faceqan_queue_faces", 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    now = metrics(address)
    key = 'faceqan_requests_total{endpoint="/score",status="%s"}'
    counted = {status: now.get(key % status, 0) - before.get(key % status, 0) for status in ("200", "499", "503")}
    batches = now.get("faceqan_batch_faces_count", 0) - before.get("faceqan_batch_faces_count", 0)
    print(f"{count} clients gone before their answer: statuses {counted}, scoring batches run {batches:.0f}, queue {now.get('faceqan_queue_faces', 0):.0f}")
    return {"gone clients: queue drained, at most a quarter scored": now.get("faceqan_queue_faces", 0) == 0 and batches <= count / 4}


def explain_flood(address, body: bytes, count: int, single: float) -> dict[str, bool]:
    """``count`` concurrent /explain requests while /score requests are timed one after another."""
    def explain() -> int | str:
        try:
            connection = http.client.HTTPConnection(*address, timeout=300)
            connection.request("POST", "/explain", body=body)
            response = connection.getresponse()
            response.read()
            return response.status
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(max_workers=count) as pool:
        flood = [pool.submit(explain) for _ in range(count)]
        time.sleep(0.5)
        timed = [post(address, body) for _ in range(5)]
        statuses: dict[str, int] = {}
        for future in flood:
            statuses[str(future.result())] = statuses.get(str(future.result()), 0) + 1
    median = float(np.median([t for s, t in timed if s == 200])) if any(s == 200 for s, _ in timed) else float("inf")
    print(f"{count} concurrent /explain: statuses {statuses}; /score median {median:.2f} s during it (alone {single:.2f} s)")
    return {"explain flood: 503s, /score within 2x": statuses.get("503", 0) > 0 and median <= 2 * single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--stalled", type=int, default=50)
    parser.add_argument("--slow-uploads", type=int, default=500)
    parser.add_argument("--gone", type=int, default=200)
    parser.add_argument("--explains", type=int, default=50)
    parser.add_argument("serve_options", nargs="*", help="options for faceqan serve (after --)")
    args = parser.parse_args()
    command = [sys.executable, "-m", "faceqan", "serve", "--port", "0", "--quiet", *args.serve_options]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        match = re.search(r"http://([\d.]+):(\d+)", server.stderr.readline())
        assert match, "the server did not start"
        logged: list[str] = []  # drained, so that a full pipe never blocks the server
        threading.Thread(target=lambda: logged.extend(server.stderr), daemon=True).start()
        address = (match.group(1), int(match.group(2)))
        body = jpeg_bytes(face_rgb())
        post(address, body)  # warm-up
        started = time.perf_counter()
        alone = [post(address, body) for _ in range(5)]
        capacity = len(alone) / (time.perf_counter() - started)
        single = float(np.median([t for _, t in alone]))
        print(f"server: {' '.join(command[3:])}; capacity {capacity:.2f} requests/s (one client), {single:.2f} s per request")
        p99 = {}
        for factor in (1, 2, 4):
            results, wall = level(address, body, capacity * factor, args.seconds)
            p99[factor] = summary(f"{factor}x ({capacity * factor:.2f}/s)", results, wall)
            if factor == 4:
                at4 = results
        clean = all(status in (200, 503) for status, _ in at4)

        stalled = []
        for _ in range(args.stalled):
            sock = socket.create_connection(address)
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            stalled.append(sock)
        status, with_stalled = post(address, body)
        for sock in stalled:
            sock.close()
        print(f"{args.stalled} stalled connections: a normal request {with_stalled:.2f} s (alone {single:.2f} s), status {status}")

        time.sleep(1)
        before = proc_status(server.pid)
        for _ in range(20):
            sock = socket.create_connection(address)
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 300_000)
            sock.close()
        time.sleep(2)
        after = proc_status(server.pid)
        print(f"20 clients gone mid-upload: threads {before['Threads']} -> {after['Threads']}, RSS {before['VmRSS'] / 1024:.0f} -> {after['VmRSS'] / 1024:.0f} MiB")
        print(f"server peak RSS: {after['VmHWM'] / 1024:.0f} MiB")
        checks = {
            "at 4x only 200 and 503, no reset": clean,
            "p99 of 200s at 4x <= 2 x p99 at 1x": p99[4] <= 2 * p99[1],
            "stalled connections add <= 1 s": status == 200 and with_stalled <= single + 1.0,
            "no thread or memory left by disconnects": after["Threads"] <= before["Threads"] and after["VmRSS"] - before["VmRSS"] <= 50 * 1024,
        }
        checks.update(slow_uploads(address, body, args.slow_uploads, server.pid, single))
        checks.update(gone_clients(address, body, args.gone))
        checks.update(explain_flood(address, body, args.explains, single))
        for name, passed in checks.items():
            print(f"goal {name}: {'pass' if passed else 'FAIL'}")
        errors = [line for line in logged if "ERROR" in line or "Traceback" in line]
        print(f"server log: {len(logged)} lines, {len(errors)} errors" + (f"; first: {errors[0].strip()}" if errors else ""))
    finally:
        stopping = time.perf_counter()
        server.terminate()
        try:
            code = server.wait(timeout=90)
            print(f"SIGTERM: the server stopped in {time.perf_counter() - stopping:.1f} s with exit code {code}")
        except subprocess.TimeoutExpired:
            server.kill()
            print("SIGTERM: the server did not stop within 90 s (killed)")


if __name__ == "__main__":
    main()
