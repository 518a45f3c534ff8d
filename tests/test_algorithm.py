"""FaceQAN's attack on tiny models whose gradients are known or easy to transcribe."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from faceqan.algorithm import FaceQAN, uniform_noise
from faceqan.official_loop import official_quality


class ProjectionModel(nn.Module):
    """M(x) = (sum(w * x), 1): the loss gradient's sign is sign(u - u0) * sign(w)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x * self.w).flatten(1).sum(1)
        return torch.stack([u, torch.ones_like(u)], dim=1)


class RecordingProjection(ProjectionModel):
    """ProjectionModel that keeps a copy of every batch it is called on: the attack's own steps."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__(w)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().double().clone())
        return super().forward(x)


def _cos(a, b):
    return (a * b).sum(-1) / a.norm(dim=-1) / b.norm(dim=-1)


@pytest.mark.parametrize("edge", [1.0, -1.0])
def test_bim_step_size_direction_and_clipping(edge):
    """The code's own adversarial batches: noisy start, then l steps of eps / l in the direction of
    the loss gradient's sign (sign(u - u0) * sign(w) for this model), clipped to [-1, 1]."""
    torch.manual_seed(0)
    shape = (3, 4, 4)
    w = torch.randn(shape)
    image = torch.rand((1, *shape)) * 2 - 1
    image[0, 0, 0, :] = edge  # pixels at the end of the range: clipping must bind there
    eps, steps, copies = 0.05, 4, 3
    model = RecordingProjection(w)
    parts = FaceQAN(model, eps=eps, steps=steps, copies=copies, power=1)(image)

    clean, *adversarial = model.inputs  # the clean + mirrored batch, then each step's batch and the final one
    assert clean.shape[0] == 2 and len(adversarial) == steps + 1
    x, wn = image.double(), w.double()
    noise = uniform_noise((copies, *shape), 0).double()  # every image gets the same k patterns
    torch.testing.assert_close(adversarial[0], (x + eps * noise).clamp(-1, 1), rtol=0, atol=1e-6)
    u0 = (x * wn).sum()
    for before, after in zip(adversarial, adversarial[1:]):
        u = (before * wn).flatten(1).sum(1)
        direction = torch.sign(u - u0)[:, None, None, None] * torch.sign(wn)
        torch.testing.assert_close(after, (before + eps / steps * direction).clamp(-1, 1), rtol=0, atol=1e-6)
        moved = (after - before).abs()
        assert torch.all(torch.isclose(moved, torch.tensor(eps / steps, dtype=moved.dtype), atol=1e-6) | (after.abs() == 1.0))
    final = adversarial[-1]
    assert torch.all((final - x).abs() <= 2 * eps + 1e-6)
    assert torch.any(final == edge)  # the clip bound
    u = (final * wn).flatten(1).sum(1)
    sims = _cos(torch.stack([u, torch.ones_like(u)], -1), torch.stack([u0, torch.ones_like(u0)])[None])
    assert parts.mean_sim.item() == pytest.approx(sims.mean().item(), abs=1e-5)
    assert parts.std_sim.item() == pytest.approx(sims.std(unbiased=False).item(), abs=1e-5)
    # The attack lowers the similarity compared with the noise alone.
    assert parts.mean_sim.item() < 1.0


def test_same_score_whatever_the_batch(tiny_net, tiny_images):
    scorer = FaceQAN(tiny_net, eps=0.01, steps=3, copies=4, seed=7)
    together = scorer(tiny_images).quality
    alone = torch.cat([scorer(tiny_images[i : i + 1]).quality for i in range(len(tiny_images))])
    shuffled_order = torch.tensor([3, 0, 4, 1, 2])
    shuffled = scorer(tiny_images[shuffled_order]).quality
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-6)
    torch.testing.assert_close(shuffled, together[shuffled_order], rtol=0, atol=1e-6)
    other_seed = FaceQAN(tiny_net, eps=0.01, steps=3, copies=4, seed=8)(tiny_images).quality
    assert not torch.allclose(other_seed, together)


def test_official_variant_equals_the_official_loop(tiny_net, tiny_images):
    eps, iters, k = 0.01, 4, 6
    for param in tiny_net.parameters():
        param.requires_grad_(True)  # the official loop computes parameter gradients too
    noise = uniform_noise((k, 3, 16, 16), 3)
    expected = [official_quality(tiny_net, (img + 1) / 2, noise, eps, iters) for img in tiny_images]
    ours = FaceQAN(tiny_net, eps=eps, steps=iters, copies=k, variant="official", seed=3)(tiny_images).quality
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_gradients_reach_the_input_only(tiny_net, tiny_images):
    FaceQAN(tiny_net, eps=0.01, steps=2, copies=2)(tiny_images)
    assert all(p.grad is None for p in tiny_net.parameters())


@pytest.mark.parametrize("bad", [dict(eps=0), dict(steps=0), dict(copies=1), dict(variant="other")])
def test_invalid_settings_are_refused(tiny_net, bad):
    with pytest.raises(ValueError):
        FaceQAN(tiny_net, **bad)


def test_non_finite_images_are_refused(tiny_net, tiny_images):
    tiny_images[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        FaceQAN(tiny_net)(tiny_images)


def test_eps_calibration_reaches_the_target_similarity(tiny_net, tiny_images):
    from faceqan.calibration import calibrate_eps, median_mean_similarity

    weak, strong = (median_mean_similarity(tiny_net, tiny_images, eps, 3, 4, "paper", 0, 5) for eps in (0.001, 0.05))
    assert strong < weak < 1  # a larger pixel budget moves the embedding further
    result = calibrate_eps(tiny_net, tiny_images, target_similarity=0.95, start_eps=0.001, steps=3, copies=4, batch_size=5)
    assert abs(math.log(1 - result.similarity) - math.log(0.05)) <= 0.1, result.tried
    assert (result.eps, result.similarity) in result.tried
    assert result.similarity == median_mean_similarity(tiny_net, tiny_images, result.eps, 3, 4, "paper", 0, 5)


def test_eps_calibration_refuses_bad_targets(tiny_net, tiny_images):
    from faceqan.calibration import calibrate_eps

    with pytest.raises(ValueError, match="target similarity"):
        calibrate_eps(tiny_net, tiny_images, target_similarity=1.2)


def test_noise_is_the_same_for_every_image_and_set_by_the_seed_alone(tiny_net, tiny_images):
    scorer = FaceQAN(tiny_net, eps=0.01, steps=2, copies=3, seed=5)
    noise = scorer.noise((3, 16, 16), torch.device("cpu"))
    torch.testing.assert_close(noise, uniform_noise((3, 3, 16, 16), 5), rtol=0, atol=0)
    assert not torch.equal(noise, uniform_noise((3, 3, 16, 16), 6))
    assert noise.abs().max() <= 1 and noise.std() > 0.5  # U(-1, 1)


def test_a_one_grey_level_change_moves_the_score_by_float_noise_only(tiny_net, tiny_images):
    """OpenCV's SIMD paths can change an aligned chip by one grey level in a few pixels; the
    noise, shared by all images, does not change with it, so the score barely moves."""
    scorer = FaceQAN(tiny_net, eps=0.05, steps=3, copies=6, power=1)
    nudged = tiny_images.clone()
    nudged[:, 0, 5, 5] += 1 / 127.5
    before, after = scorer(tiny_images), scorer(nudged.clamp(-1, 1))
    np.testing.assert_allclose(after.quality.numpy(), before.quality.numpy(), atol=2e-3)


@pytest.mark.parametrize("low, high", [(0.0, 255.0), (-1.5, 1.0)])
def test_images_outside_minus_one_to_one_are_refused(tiny_net, low, high):
    images = torch.linspace(low, high, 3 * 16 * 16).view(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        FaceQAN(tiny_net)(images)


def test_official_variant_refuses_a_fractional_power(tiny_net):
    with pytest.raises(ValueError, match="integer power"):
        FaceQAN(tiny_net, variant="official", power=2.5)
    FaceQAN(tiny_net, variant="official", power=3.0)  # an integer given as a float is fine


def test_eps_defaults_to_the_models_own(tiny_net):
    from faceqan.models.dlib import DLIB_SPEC
    from faceqan.models.spec import FaceModel

    assert FaceQAN(FaceModel(tiny_net, DLIB_SPEC)).eps == DLIB_SPEC.default_eps != 0.001
    assert FaceQAN(tiny_net).eps == 0.001  # a bare module: the paper's


def test_a_model_whose_weights_are_all_buffers_is_found_on_its_device(tiny_net):
    from faceqan.algorithm import model_device

    class BufferNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.ones(3), persistent=True)

        def forward(self, x):
            return x.mean(dim=(2, 3)) * self.w

    net = BufferNet().to("meta")
    assert model_device(net).type == "meta"
    assert model_device(nn.Identity()).type == "cpu"


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_explain_gives_the_scores_and_the_perturbation_of_the_same_attack(tiny_net, tiny_images, variant):
    scorer = FaceQAN(tiny_net, eps=0.02, steps=3, copies=4, variant=variant)
    parts, perturbation = scorer.explain(tiny_images)
    torch.testing.assert_close(parts.quality, scorer(tiny_images).quality, rtol=0, atol=0)
    assert perturbation.shape == tiny_images.shape and perturbation.device.type == "cpu"
    # Paper: l steps of eps / l move a pixel by at most eps; official: l full steps of eps in [0, 1] units.
    bound = 0.02 if variant == "paper" else 2 * 0.02 * 3
    assert 0 < perturbation.abs().max() <= bound + 1e-6
    alone = scorer.explain(tiny_images[1:2])[1]
    torch.testing.assert_close(alone, perturbation[1:2], rtol=0, atol=1e-6)
