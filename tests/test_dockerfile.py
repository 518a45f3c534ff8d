"""The service image: its command is the CLI's `serve`, and (where a docker daemon exists) the
built image starts the service (CI machines have no daemon)."""

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from faceqan.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, comments left out."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]


def test_the_image_command_is_the_cli_serve_on_every_interface_with_a_key():
    commands = [json.loads(arguments) for instruction, arguments in _instructions() if instruction == "CMD"]
    assert len(commands) == 1 and commands[0][0] == "faceqan"
    args = build_parser().parse_args(commands[0][1:])  # the image's command line, read by the CLI itself
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port == 8080
    assert not args.insecure and args.api_key is None  # the key must come from FACEQAN_API_KEY at run time


def test_the_image_installs_a_cpu_torch_before_faceqan():
    runs = [arguments for instruction, arguments in _instructions() if instruction == "RUN"]
    torch_step = next(i for i, run in enumerate(runs) if "torch==" in run)
    faceqan_step = next(i for i, run in enumerate(runs) if '".[serve' in run)
    assert torch_step < faceqan_step and "whl/cpu" in runs[torch_step]


def _docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _docker_daemon(), reason="no docker daemon on this machine (CI machines have none)")
def test_the_built_image_serves_with_a_key():
    result = subprocess.run(["docker", "build", "-t", "faceqan-test", str(ROOT)], capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-2000:]
    run = subprocess.run(["docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080", "-e", "FACEQAN_API_KEY=k", "faceqan-test"], capture_output=True, text=True, check=True)
    container = run.stdout.strip()
    try:
        port = subprocess.run(["docker", "port", container, "8080"], capture_output=True, text=True, check=True).stdout.split(":")[-1].strip()
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the image's service never answered /health"
                time.sleep(2)
    finally:
        subprocess.run(["docker", "stop", container], capture_output=True)
