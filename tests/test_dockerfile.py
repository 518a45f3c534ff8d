"""The Dockerfile builds the service image (only where docker exists: CI machines have none)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_dockerfile_installs_a_cpu_torch_first_and_serves_with_a_key():
    text = (ROOT / "Dockerfile").read_text()
    torch_line = next(i for i, line in enumerate(text.splitlines()) if "torch==" in line)
    faceqan_line = next(i for i, line in enumerate(text.splitlines()) if '".[serve' in line)
    assert torch_line < faceqan_line and "whl/cpu" in text.splitlines()[torch_line]
    assert '"serve", "--host", "0.0.0.0"' in text and "FACEQAN_API_KEY" in text


def _docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(not _docker_daemon(), reason="no docker daemon on this machine (CI machines have none)")
def test_the_image_builds():
    result = subprocess.run(["docker", "build", "-t", "faceqan-test", str(ROOT)], capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-2000:]
