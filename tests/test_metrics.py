"""ERC / EDC metrics on small hand-made cases, and the random and oracle sanity checks."""

import numpy as np
import pytest

from faceqan.evaluation.metrics import (
    Curve,
    NonmatedPairs,
    area,
    best_area,
    bootstrap,
    edc,
    edc_threshold,
    erc,
    fnmr,
    pair_quality,
    pauc,
    threshold_at_fmr,
)


def test_threshold_at_fmr_allows_the_stated_share_of_false_matches():
    scores = np.linspace(0.1, 1.0, 10)
    t = threshold_at_fmr(scores, 0.1)
    assert np.sum(scores >= t) == 1
    assert np.sum(scores >= threshold_at_fmr(scores, 0.0)) == 0
    assert np.sum(scores >= threshold_at_fmr(scores, 0.35)) == 3


def test_fnmr_and_pair_quality():
    assert fnmr(np.array([0.2, 0.5, 0.9, 0.95]), 0.6) == 0.5
    np.testing.assert_array_equal(pair_quality([1, 5], [3, 2]), [1, 2])
    np.testing.assert_array_equal(pair_quality([1, 5], [3, 2], "mean"), [2, 3.5])
    with pytest.raises(ValueError):
        pair_quality([1], [2], "max")


def test_erc_hand_case():
    # 4 mated pairs; the two errors (scores 0.1, 0.2) have the lowest quality.
    mated = np.array([0.1, 0.2, 0.8, 0.9])
    mated_q = np.array([0.1, 0.2, 0.7, 0.9])
    nonmated = np.array([0.0, 0.05, 0.3, 0.5])
    nonmated_q = np.array([0.5, 0.5, 0.5, 0.5])
    curve = erc(mated, mated_q, nonmated, nonmated_q, fmr=0.0, fractions=np.array([0, 0.25, 0.5, 0.75]))
    # threshold just above 0.5: FNMR 2/4, then 1/3, then 0/2; at 0.75 the non-mated pairs
    # (quality 0.5 <= cut 0.7) are all gone.
    np.testing.assert_allclose(curve.y[:3], [0.5, 1 / 3, 0.0])
    assert np.isnan(curve.y[3])
    assert area(Curve(np.array([0, 0.5, 1.0]), np.array([1.0, 0.0, 0.0])), 0.5) == pytest.approx(0.25)


def _synthetic(seed=0, n_mated=4000, n_nonmated=20000):
    rng = np.random.default_rng(seed)
    mated_q = rng.uniform(size=n_mated)
    mated = rng.normal(0.4 + 0.5 * mated_q, 0.15)  # higher quality, higher mated score
    nonmated_q = rng.uniform(size=n_nonmated)
    nonmated = rng.normal(0.0, 0.1, size=n_nonmated)
    return mated, mated_q, nonmated, nonmated_q


def test_random_quality_gives_a_flat_erc_on_average():
    mated, _, nonmated, _ = _synthetic()
    rng = np.random.default_rng(1)
    fractions = np.array([0.0, 0.2, 0.4])
    curves = [erc(mated, rng.uniform(size=mated.size), nonmated, rng.uniform(size=nonmated.size), 1e-3, fractions).y for _ in range(30)]
    mean = np.mean(curves, axis=0)
    assert abs(mean[1] - mean[0]) < 0.02 and abs(mean[2] - mean[0]) < 0.02


def _naive_erc(mated, mated_q, nonmated, nonmated_q, fmr, fractions):
    """The ERC's definition, read literally: filter, then threshold on what remains."""
    cuts = [-np.inf if c == 0 else np.sort(mated_q)[c - 1] for c in np.floor(fractions * mated.size + 1e-9).astype(int)]
    order = np.argsort(mated_q, kind="stable")
    values = []
    for fraction, cut in zip(fractions, cuts):
        kept = nonmated[nonmated_q > cut]
        remaining = mated[order[int(np.floor(fraction * mated.size + 1e-9)) :]]
        values.append(fnmr(remaining, threshold_at_fmr(kept, fmr)) if kept.size else np.nan)
    return np.array(values)


@pytest.mark.parametrize("fmr", [0.0, 1e-3, 0.05])
def test_fast_weighted_erc_equals_the_definition_on_expanded_pairs(fmr):
    mated, mated_q, nonmated, nonmated_q = _synthetic(seed=3, n_mated=500, n_nonmated=30000)
    rng = np.random.default_rng(4)
    # Ties in quality and score, and unscored images (quality -inf, discarded first).
    mated_q, nonmated_q = np.round(mated_q, 2), np.round(nonmated_q, 2)
    nonmated = np.round(nonmated, 3)
    nonmated_q[rng.uniform(size=nonmated_q.size) < 0.01] = -np.inf
    weights = rng.integers(0, 3, nonmated.size)  # a bootstrap resample's draw counts
    fractions = np.round(np.arange(0, 0.96, 0.05), 2)
    fast = erc(mated, mated_q, nonmated, nonmated_q, fmr, fractions, nonmated_weights=weights)
    expected = _naive_erc(mated, mated_q, np.repeat(nonmated, weights), np.repeat(nonmated_q, weights), fmr, fractions)
    np.testing.assert_array_equal(fast.y, expected)
    prepared = NonmatedPairs(nonmated, nonmated_q)
    prepared = erc(mated, mated_q, prepared, None, fmr, fractions, weights[prepared.order])
    np.testing.assert_array_equal(prepared.y, expected)
    assert threshold_at_fmr(nonmated, fmr, weights) == threshold_at_fmr(np.repeat(nonmated, weights), fmr)
    # Ranked against the mated qualities only (what evaluate does with millions of pairs).
    coarse = NonmatedPairs(nonmated, nonmated_q, cut_levels=mated_q)
    coarse = erc(mated, mated_q, coarse, None, fmr, fractions, weights[coarse.order])
    np.testing.assert_array_equal(coarse.y, expected)
    with pytest.raises(ValueError, match="not one of the levels"):
        NonmatedPairs(nonmated, nonmated_q, cut_levels=mated_q).kept_weight(np.ones(nonmated.size), np.array([0.123456]))


def test_erc_refuses_unordered_fractions():
    mated, mated_q, nonmated, nonmated_q = _synthetic(n_mated=50, n_nonmated=100)
    with pytest.raises(ValueError, match="ascending"):
        erc(mated, mated_q, nonmated, nonmated_q, 1e-3, np.array([0.2, 0.1]))


def test_informative_quality_lowers_the_erc():
    mated, mated_q, nonmated, nonmated_q = _synthetic()
    curve = erc(mated, mated_q, nonmated, nonmated_q, 1e-3, np.array([0.0, 0.2, 0.4]))
    assert curve.y[0] > curve.y[1] > curve.y[2]


def test_edc_steps_and_ties():
    mated = np.array([0.1, 0.9, 0.2, 0.8, 0.7])
    quality = np.array([0.1, 0.3, 0.3, 0.5, 0.6])  # two pairs tie at 0.3
    curve = edc(mated, quality, threshold=0.5)
    np.testing.assert_allclose(curve.x, [0.0, 0.2, 0.6, 0.8])
    np.testing.assert_allclose(curve.y, [2 / 5, 1 / 4, 0 / 2, 0.0])
    # pAUC to 0.3: 0.2 * 0.4 + 0.1 * 0.25
    assert pauc(curve, 0.3) == pytest.approx(0.2 * 0.4 + 0.1 * 0.25)


def test_oracle_edc_is_the_theoretical_best():
    rng = np.random.default_rng(0)
    mated = rng.uniform(size=5000)
    threshold = edc_threshold(mated, start_fnmr=0.1)
    curve = edc(mated, mated, threshold)  # quality = the score: errors discarded first
    assert curve.y[0] == pytest.approx(0.1, abs=1e-3)
    assert pauc(curve, 0.2, minus_best=True) == pytest.approx(0.0, abs=1e-3)
    random_curve = edc(mated, rng.uniform(size=mated.size), threshold)
    assert pauc(random_curve, 0.2) == pytest.approx(0.1 * 0.2, abs=0.004)
    assert best_area(0.1, 0.2) == pytest.approx(0.005, abs=3e-4)


def test_edc_threshold_from_fmr():
    nonmated = np.linspace(0, 1, 1001)
    assert edc_threshold(np.array([0.5]), nonmated, fmr=0.01) == pytest.approx(0.99, abs=2e-3)


def test_bootstrap_over_groups_brackets_the_statistic():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 5)
    values = rng.normal(1.0, 1.0, size=groups.size)
    samples = bootstrap(lambda weights: np.average(values, weights=weights), groups, resamples=300)
    low, high = np.percentile(samples, [2.5, 97.5])
    assert low < values.mean() < high and high - low < 0.4
    # Integer labels with gaps take a no-sort path: same resamples as the general one.
    sparse = groups * 7 + 3
    statistic = lambda weights: float(np.average(values, weights=weights))  # noqa: E731
    np.testing.assert_array_equal(bootstrap(statistic, sparse, 20), bootstrap(statistic, sparse.astype(float), 20))


def _quality_driven_protocol(rng, identities: int, floor: float):
    """All pairs among 4 images per identity; mated pairs of low-quality images get low scores,
    so the true per-image quality predicts errors. Returns (protocol, scores, true quality)."""
    from faceqan.evaluation.protocols import Protocol

    n_images = 4 * identities
    identity = np.repeat(np.arange(identities), 4)
    first, second = np.triu_indices(n_images, k=1)
    mated = identity[first] == identity[second]
    image_quality = rng.uniform(size=n_images)
    scores = np.where(mated, floor + 0.6 * np.minimum(image_quality[first], image_quality[second]), 0.0) + rng.normal(0, 0.05, first.size)
    protocol = Protocol([str(i) for i in range(n_images)], first, second, mated, np.zeros(first.size, int), identity[first], "synthetic")
    return protocol, scores, image_quality


def test_paired_differences_show_a_real_gap():
    from faceqan.evaluation.evaluate import evaluate, results_table

    rng = np.random.default_rng(0)
    protocol, scores, image_quality = _quality_driven_protocol(rng, 100, 0.05)
    qualities = {"truth": image_quality, "noise": rng.uniform(size=len(protocol.images))}
    results = evaluate(protocol, scores, qualities, fmr=1e-2, resamples=30, random_seeds=2)
    low, high = results[1].differences["erc_auc@20"]
    assert 0 < low < high  # the noise method is worse than the truth, and the interval says so
    assert not results[0].differences
    _, markdown = results_table(results)
    assert "Paired 95% bootstrap interval of (method - truth)" in markdown


def test_edc_from_a_starting_fnmr():
    from faceqan.evaluation.evaluate import evaluate

    protocol, scores, image_quality = _quality_driven_protocol(np.random.default_rng(3), 75, 0.3)
    mated = protocol.mated

    def edc_result(start):
        return evaluate(protocol, scores, {"truth": image_quality}, fmr=1e-2, resamples=0, random_seeds=0, edc_start_fnmr=start)[0]

    low, high, by_fmr = edc_result(0.05), edc_result(0.2), edc_result(None)
    assert low.edc_curve[1][0] == pytest.approx(0.05, abs=1 / mated.sum())  # the curve starts at the asked FNMR
    assert high.edc_curve[1][0] == pytest.approx(0.2, abs=1 / mated.sum())
    assert high.values["edc_pauc@20"] > low.values["edc_pauc@20"]
    assert by_fmr.edc_curve[1][0] != pytest.approx(0.05, abs=0.01)  # the default threshold is another one
    assert low.values["erc_auc@20"] == by_fmr.values["erc_auc@20"]  # the ERC does not depend on it
    with pytest.raises(ValueError, match="starting FNMR"):
        edc_result(1.5)


def test_plots_draw_the_random_mean_and_one_line_for_identical_curves(tmp_path):
    from PIL import Image

    from faceqan.evaluation.evaluate import _mean_step_curve, curve_lines, evaluate, plot_curves

    rng = np.random.default_rng(1)
    protocol, scores, image_quality = _quality_driven_protocol(rng, 40, 0.05)
    qualities = {"truth": image_quality, "same as truth": image_quality.copy(), "noise": rng.uniform(size=len(protocol.images))}
    results = evaluate(protocol, scores, qualities, fmr=1e-2, resamples=0, random_seeds=4)
    for kind in ("erc", "edc"):
        lines = curve_lines(results, kind)
        assert [label for label, *_ in lines] == ["truth = same as truth", "noise", "random (mean over seeds)"]
        assert [is_random for *_, is_random in lines] == [False, False, True]
    # The random line is the mean of the seeds' curves: flat in expectation, at the full-set FNMR.
    random_erc = results[-1].erc_curve[1]
    assert random_erc[0] == pytest.approx(results[0].erc_curve[1][0])
    assert abs(np.nanmean(random_erc[:40]) - random_erc[0]) < 0.5 * random_erc[0]
    for path in plot_curves(results, f"{tmp_path}/", "synthetic"):
        with Image.open(path) as image:
            assert image.size == (768, 528)

    # Mean of step curves on a grid: each value holds from its x to the next.
    grid, mean = _mean_step_curve([(np.array([0.0, 0.5]), np.array([1.0, 0.0])), (np.array([0.0]), np.array([0.5]))], points=5)
    np.testing.assert_allclose(grid, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(mean, [0.75, 0.75, 0.25, 0.25, 0.25])


def test_an_erc_that_runs_out_of_pairs_stops_and_no_table_says_nan():
    """Non-mated pairs all of the lowest quality: rejecting 40 % leaves none to set a threshold on."""
    from faceqan.evaluation.evaluate import erc_end, evaluate, results_table

    rng = np.random.default_rng(5)
    protocol, scores, image_quality = _quality_driven_protocol(rng, 30, 0.05)
    quality = image_quality.copy()
    impostor_images = np.arange(40)  # identities 0-9
    keep = protocol.mated | np.isin(protocol.first, impostor_images) & np.isin(protocol.second, impostor_images)
    protocol, scores = protocol.subset(keep), scores[keep]
    quality[impostor_images] = quality[impostor_images] * 0.01  # impostor images first to go
    results = evaluate(protocol, scores, {"q": quality}, fmr=0.05, resamples=20, random_seeds=2)
    end = erc_end(results[0])
    assert end is not None and 0 < end < 0.8
    assert np.isnan(results[0].values["erc_auc@80"]) and not np.isnan(results[0].values["erc_auc@10"])
    rows, markdown = results_table(results)
    assert "nan" not in markdown.lower() and f"- (ERC ends at {end:.0%})" in markdown
    assert rows[0]["erc_auc@80"] is None and rows[0]["erc_auc@10"] is not None
    assert "An ERC stops where rejection leaves no non-mated or no mated pair" in markdown
