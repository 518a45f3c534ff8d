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


def _cos(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_bim_step_size_direction_and_clipping():
    torch.manual_seed(0)
    shape = (3, 4, 4)
    w = torch.randn(shape)
    images = torch.rand((2, *shape)) * 2 - 1
    images[0, 0, 0, :] = 1.0  # pixels at the top of the range: clipping must bind there
    images[1, 1, 1, :] = -1.0
    eps, steps, copies = 0.05, 4, 3
    scorer = FaceQAN(ProjectionModel(w), eps=eps, steps=steps, copies=copies, power=1)
    parts = scorer(images)

    x = images.double().numpy()
    wn = w.double().numpy()
    noise = uniform_noise((copies, *shape), 0).double().numpy()[None]  # every image gets the same k patterns
    adv = np.clip(x[:, None] + eps * noise, -1, 1)
    u0 = (x * wn).reshape(2, -1).sum(1)
    for _ in range(steps):
        u = (adv * wn).reshape(2, copies, -1).sum(-1)
        direction = np.sign(u - u0[:, None])[..., None, None, None] * np.sign(wn)
        stepped = np.clip(adv + eps / steps * direction, -1, 1)
        moved = np.abs(stepped - adv)
        assert np.all((np.isclose(moved, eps / steps)) | (np.abs(stepped) == 1.0))
        adv = stepped
    assert np.all(np.abs(adv - x[:, None]) <= 2 * eps + 1e-12)
    assert np.any(adv == 1.0) and np.any(adv == -1.0)
    u = (adv * wn).reshape(2, copies, -1).sum(-1)
    sims = _cos(np.stack([u, np.ones_like(u)], -1), np.stack([u0, np.ones_like(u0)], -1)[:, None])
    np.testing.assert_allclose(parts.mean_sim.numpy(), sims.mean(1), rtol=0, atol=1e-5)
    np.testing.assert_allclose(parts.std_sim.numpy(), sims.std(1), rtol=0, atol=1e-5)
    # The attack lowers the similarity compared with the noise alone.
    assert np.all(parts.mean_sim.numpy() < 1.0)


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
