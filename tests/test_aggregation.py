import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faceqan.algorithm import aggregate


def test_eq4_on_known_values():
    sims = torch.tensor([[0.9, 0.7, 0.8, 0.6]], dtype=torch.float64)
    flip = torch.tensor([0.95], dtype=torch.float64)
    parts = aggregate(sims, flip, power=5, clip_flip=True)
    mean, std = 0.75, np.std([0.9, 0.7, 0.8, 0.6])  # population std
    q_adv = (mean + 1) / 2 * (1 - std)
    assert parts.mean_sim.item() == pytest.approx(mean)
    assert parts.std_sim.item() == pytest.approx(std)
    assert parts.q_adv.item() == pytest.approx(q_adv)
    assert parts.quality.item() == pytest.approx((q_adv * 0.95) ** 5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=12), st.floats(-1.0, 1.0))
def test_every_score_part_stays_in_its_range(values, flip):
    """Similarities in [-1, 1]: the population spread is at most 1, so 1 - std never needs its
    clip and q_adv is eq. (4) exactly, in [0, 1]; with the paper's clip Q is in [0, 1] too."""
    sims = torch.tensor([values], dtype=torch.float64)
    parts = aggregate(sims, torch.tensor([flip], dtype=torch.float64), power=5, clip_flip=True)
    mean, std = np.mean(values), np.std(values)
    assert 0.0 <= parts.std_sim.item() <= 1.0 + 1e-12
    assert parts.q_adv.item() == pytest.approx((mean + 1) / 2 * (1 - std), abs=1e-12)
    assert 0.0 <= parts.q_adv.item() <= 1.0 and 0.0 <= parts.quality.item() <= 1.0


def test_the_largest_spread_gives_zero():
    sims = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    parts = aggregate(sims, torch.tensor([1.0]), power=1, clip_flip=True)
    assert parts.std_sim.item() == pytest.approx(1.0)  # population std (the sample std would be 1.15)
    assert parts.q_adv.item() == 0.0


def test_negative_flip_similarity_paper_clips_official_keeps_sign():
    sims = torch.tensor([[0.9, 0.9]])
    flip = torch.tensor([-0.5])
    assert aggregate(sims, flip, power=5, clip_flip=True).quality.item() == 0.0
    official = aggregate(sims, flip, power=5, clip_flip=False).quality.item()
    assert official == pytest.approx((0.95 * -0.5) ** 5)
    assert official < 0


def test_power_is_monotonic_and_keeps_order():
    sims = torch.tensor([[0.99, 0.98], [0.9, 0.8], [0.5, 0.1]])
    flip = torch.ones(3)
    for p in (1, 2, 5):
        quality = aggregate(sims, flip, power=p, clip_flip=True).quality
        assert torch.all(quality[:-1] > quality[1:])
