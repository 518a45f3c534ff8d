"""Requests per second of the scoring service under concurrent clients, per batch size.

    python benchmarks/service_throughput.py [--model dlib|sface|r100] [--device cpu] [--clients 8] [--requests 4] [--batch-sizes 1 8]

Each client thread sends its requests one after another (encoded JPEG faces, the built-in
sample brightened differently per request) straight to ``QualityService.score``, without
HTTP. With ``--batch-sizes 1 N``, the same service setup with faces of concurrent requests
scored one at a time and N at a time: the gain of batching across requests (on a GPU).
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceqan.demo import degraded_samples
from faceqan.methods import create_method
from faceqan.service import QualityService

sys.path.insert(0, str(Path(__file__).parent))
from speed import load_model  # noqa: E402


def uploads(count: int) -> list[bytes]:
    face = degraded_samples()["original"]
    encoded = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(np.clip(face.astype(int) + i % 40, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
        encoded.append(buffer.getvalue())
    return encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dlib")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    args = parser.parse_args()

    device = torch.device(args.device)
    model = load_model(args.model, device)
    method = create_method("faceqan", model)
    bodies = uploads(args.clients * args.requests)
    print(f"model {args.model} on {device}: {args.clients} clients x {args.requests} requests, one face each")
    for batch_size in args.batch_sizes:
        service = QualityService(model, method, {}, batch_size, args.max_wait_ms / 1000)
        service.score(bodies[0], "warm-up")
        failures = []

        def client(index: int) -> None:
            for j in range(args.requests):
                rows = service.score(bodies[index * args.requests + j], f"c{index}r{j}")
                failures.extend(row for row in rows if row["status"] != "ok")

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        service.close()
        print(f"batch size {batch_size:3d}: {len(bodies) / seconds:8.2f} requests/s ({seconds:.2f} s, {len(failures)} failed)")


if __name__ == "__main__":
    main()
