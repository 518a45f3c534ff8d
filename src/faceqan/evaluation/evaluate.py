"""ERC / EDC evaluation of quality methods on a pair protocol: comparison scores from one FR
model, per-image qualities from any number of methods, tables with confidence intervals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..cache import ResultCache, file_digest
from ..faces.prepare import FacePreparer
from ..pipeline import BatchLimit, Method, prepared_batches, score_batch
from .metrics import NonmatedPairs, area, bootstrap, edc, edc_threshold, erc, pair_quality, pauc
from .protocols import Protocol

AUC_LIMITS = (0.1, 0.2, 0.4, 0.8)


def edc_key(limit: float) -> str:
    """The EDC pAUC's column name, which states its discard limit: ``edc_pauc@30`` for 0.3."""
    return f"edc_pauc@{round(limit * 100, 1):g}"
ERC_FRACTIONS = np.round(np.arange(0, 0.801, 0.01), 2)


TITLE_WIDTH = 60  # characters of a progress bar's title; the bar itself is bounded to 100


def progress_title(count: int, names: list[str]) -> str:
    """A progress bar's title in words: ``scoring 1,753 faces: faceqan, student, flip``, cut to TITLE_WIDTH."""
    title = f"scoring {count:,} faces: {', '.join(names)}"
    return title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 3] + "..."


def cached_values(paths: list[str], preparer: FacePreparer, method: Method, cache: ResultCache, batch_size: int = 8, progress: bool = True) -> dict[str, dict]:
    """Each path's row of ``method`` values (status included), computing only what the cache lacks."""
    return cached_values_of(paths, preparer, [(method, cache)], batch_size, progress)[0]


def cached_values_of(paths: list[str], preparer: FacePreparer, jobs: list[tuple[Method, ResultCache]], batch_size: int = 8, progress: bool = True) -> list[dict[str, dict]]:
    """Per (method, cache) job, each path's row of values (status included), computing only
    what each cache lacks; an image is detected and aligned once for all the jobs that need it."""
    from tqdm import tqdm

    digests = {path: file_digest(path) for path in paths}
    todo = [{p for p in paths if cache.get(digests[p]) is None} for _, cache in jobs]
    needed = [p for p in paths if any(p in missing for missing in todo)]
    limits = [BatchLimit() for _ in jobs]
    names = [getattr(method, "name", None) or cache.path.stem.rsplit("-", 1)[0] for (method, cache), missing in zip(jobs, todo) if missing]
    with tqdm(total=len(needed), unit="img", disable=not progress or not needed, desc=progress_title(len(needed), names), ncols=100) as bar:
        for faces in prepared_batches(needed, preparer, batch_size):
            for (method, cache), missing, limit in zip(jobs, todo, limits):
                mine = [face for face in faces if face.path in missing]
                if mine:
                    rows = [row for row in score_batch(mine, method, limit) if row["face"] == 0]
                    cache.put_many({digests[row["path"]]: {k: v for k, v in row.items() if k not in ("path", "box")} for row in rows})
            bar.update(len({face.path for face in faces}))
    return [{path: cache.get(digests[path]) for path in paths} for _, cache in jobs]


def item_embeddings(protocol: Protocol, per_image: dict[str, list[float] | None]) -> dict[str, np.ndarray | None]:
    """Each compared item's embedding: the image's own, or for a template the mean of its
    images' L2-normalised embeddings (images without one left out; None if none has one)."""
    if protocol.members is None:
        return {path: None if per_image.get(path) is None else np.asarray(per_image[path], float) for path in protocol.images}
    items: dict[str, np.ndarray | None] = {}
    for name, member_paths in zip(protocol.images, protocol.members):
        found = [np.asarray(per_image[p], float) for p in member_paths if per_image.get(p) is not None]
        items[name] = np.mean([e / np.linalg.norm(e) for e in found], axis=0) if found else None
    return items


def item_values(protocol: Protocol, paths: list[str], per_image: np.ndarray) -> np.ndarray:
    """Per compared item, its image's value, or for a template the mean over its images with
    a value (NaN where none has one); ``per_image`` is aligned with ``paths``."""
    by_path = dict(zip(paths, per_image))
    if protocol.members is None:
        return np.array([by_path.get(p, np.nan) for p in protocol.images], float)
    values = np.full(len(protocol.images), np.nan)
    for i, member_paths in enumerate(protocol.members):
        found = [by_path[p] for p in member_paths if not np.isnan(by_path.get(p, np.nan))]
        if found:
            values[i] = float(np.mean(found))
    return values


def comparison_scores(protocol: Protocol, embeddings: dict[str, np.ndarray | None], chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each pair (embeddings per compared item), and which pairs have both."""
    size = max((len(e) for e in embeddings.values() if e is not None), default=0)
    matrix = np.full((len(protocol.images), size), np.nan)
    for i, path in enumerate(protocol.images):
        if embeddings.get(path) is not None:
            matrix[i] = embeddings[path]
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    valid = ~np.isnan(matrix[:, 0])
    scores = np.zeros(len(protocol))
    # In chunks: all pairs among 7,701 LFW images are 30 M pairs, 60 GB of gathered embeddings.
    for start in range(0, len(protocol) if size else 0, chunk):
        stop = start + chunk
        scores[start:stop] = np.einsum("ij,ij->i", matrix[protocol.first[start:stop]], matrix[protocol.second[start:stop]])
    return scores, valid[protocol.first] & valid[protocol.second]


@dataclass
class MethodResult:
    name: str
    values: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    # 95% paired-bootstrap interval of (this method - the first method), per metric.
    differences: dict[str, tuple[float, float]] = field(default_factory=dict)
    erc_curve: tuple[np.ndarray, np.ndarray] | None = None
    edc_curve: tuple[np.ndarray, np.ndarray] | None = None
    random_baseline: bool = False  # curves: the mean over random seeds


def _interval(samples: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the finite samples (NaN, NaN when none is)."""
    finite = samples[np.isfinite(samples)]
    return (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))) if finite.size else (np.nan, np.nan)


def _mean_step_curve(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """The mean of step curves (each value holds from its x to the next), on a common grid."""
    grid = np.linspace(0, 1, points)
    values = [y[np.clip(np.searchsorted(x, grid, side="right") - 1, 0, None)] for x, y in curves]
    return grid, np.mean(values, axis=0)


@dataclass(frozen=True)
class _RankedPairs:
    """One method's pairs, prepared once for its full-set figures and all its bootstrap
    resamples: mated scores and qualities, and the non-mated ones as ``NonmatedPairs``."""

    mated: np.ndarray  # pair indices
    nonmated: np.ndarray  # pair indices in descending score order, as in nonmated_pairs
    mated_scores: np.ndarray
    mated_quality: np.ndarray
    nonmated_pairs: NonmatedPairs

    @classmethod
    def build(cls, scores: np.ndarray, pq: np.ndarray, mated: np.ndarray, nonmated_descending: np.ndarray) -> "_RankedPairs":
        """``nonmated_descending``: the non-mated pair indices, highest score first (shared by all methods)."""
        # ERC cuts are mated pair qualities (or -inf): rank the non-mated pairs against those only.
        prepared = NonmatedPairs(scores[nonmated_descending], pq[nonmated_descending], descending=True, cut_levels=pq[mated])
        return cls(mated, nonmated_descending, scores[mated], pq[mated], prepared)


def _metrics(
    pairs: _RankedPairs, fmr: float, edc_limit: float, weights: np.ndarray | None = None, edc_start_fnmr: float | None = None
) -> tuple[dict[str, float], object, object]:
    """ERC / EDC figures; ``weights``: each pair's bootstrap draw count (None: each once);
    ``edc_start_fnmr``: fix the EDC's threshold at this FNMR instead of at ``fmr``."""
    ms, mq = pairs.mated_scores, pairs.mated_quality
    nw = np.ones(pairs.nonmated.size) if weights is None else weights[pairs.nonmated].astype(float)
    if weights is not None:
        ms, mq = np.repeat(ms, weights[pairs.mated]), np.repeat(mq, weights[pairs.mated])
    if ms.size == 0 or not nw.any():  # a bootstrap resample can lack one kind
        keys = [f"erc_auc@{int(limit * 100)}" for limit in AUC_LIMITS] + [edc_key(edc_limit), edc_key(edc_limit) + "-best", "fnmr@0"]
        return dict.fromkeys(keys, float("nan")), None, None
    erc_curve = erc(ms, mq, pairs.nonmated_pairs, None, fmr, ERC_FRACTIONS, nw)
    values = {f"erc_auc@{int(limit * 100)}": area(erc_curve, limit) * 1e3 for limit in AUC_LIMITS}
    # EDC's threshold, fixed before discarding: at the target FMR on all non-mated pairs, or at
    # the starting FNMR on all mated ones, whatever their quality.
    if edc_start_fnmr is None:
        threshold = pairs.nonmated_pairs.threshold(nw, float(nw.sum()), fmr)
    else:
        threshold = edc_threshold(ms, start_fnmr=edc_start_fnmr)
    edc_curve = edc(ms, mq, threshold)
    values[edc_key(edc_limit)] = pauc(edc_curve, edc_limit) * 1e3
    values[edc_key(edc_limit) + "-best"] = pauc(edc_curve, edc_limit, minus_best=True) * 1e3
    values["fnmr@0"] = float(erc_curve.y[0])
    return values, erc_curve, edc_curve


def evaluate(
    protocol: Protocol,
    scores: np.ndarray,
    qualities: dict[str, np.ndarray],
    fmr: float = 1e-3,
    edc_limit: float = 0.2,
    how: str = "min",
    resamples: int = 100,
    random_seeds: int = 10,
    edc_start_fnmr: float | None = None,
) -> list[MethodResult]:
    """Metrics for each quality method (per-image arrays aligned with protocol.images; NaN
    = no quality, rejected first), with bootstrap 95% intervals over identities, plus a
    random-quality row (mean and spread over seeds). The EDC's threshold is set at ``fmr``,
    or at ``edc_start_fnmr`` when given."""
    if edc_start_fnmr is not None and not 0 < edc_start_fnmr < 1:
        raise ValueError(f"the EDC's starting FNMR must be between 0 and 1, got {edc_start_fnmr}")
    mated = np.flatnonzero(protocol.mated)
    nonmated = np.flatnonzero(~protocol.mated)
    if mated.size == 0 or nonmated.size == 0:
        raise ValueError(f"{protocol.name}: {mated.size} mated and {nonmated.size} non-mated pairs; an ERC needs both")
    nonmated = nonmated[np.argsort(-scores[nonmated], kind="stable")]
    results = []
    reference_samples = None
    for name, per_image in qualities.items():
        q = np.where(np.isnan(per_image), -np.inf, per_image)
        pq = pair_quality(q[protocol.first], q[protocol.second], how)
        pairs = _RankedPairs.build(scores, pq, mated, nonmated)
        values, erc_curve, edc_curve = _metrics(pairs, fmr, edc_limit, None, edc_start_fnmr)
        result = MethodResult(name, values, erc_curve=(erc_curve.x, erc_curve.y), edc_curve=(edc_curve.x, edc_curve.y))
        if resamples:
            samples = bootstrap(lambda weights: _metrics(pairs, fmr, edc_limit, weights, edc_start_fnmr)[0], protocol.group, resamples)
            # Every method sees the same resamples (same seed), so differences are paired.
            reference_samples = samples if reference_samples is None else reference_samples
            for key in values:
                column = np.array([s[key] for s in samples])
                result.intervals[key] = _interval(column)
                if samples is not reference_samples:
                    difference = column - np.array([s[key] for s in reference_samples])
                    result.differences[key] = _interval(difference)
        results.append(result)
    if random_seeds:
        runs, erc_curves, edc_curves = [], [], []
        for seed in range(random_seeds):
            q = np.random.default_rng(seed).uniform(size=len(protocol.images))
            pq = pair_quality(q[protocol.first], q[protocol.second], how)
            values, erc_curve, edc_curve = _metrics(_RankedPairs.build(scores, pq, mated, nonmated), fmr, edc_limit, None, edc_start_fnmr)
            runs.append(values)
            erc_curves.append(erc_curve)
            edc_curves.append((edc_curve.x, edc_curve.y))
        keys = runs[0].keys()
        mean = {k: float(np.mean([r[k] for r in runs])) for k in keys}
        spread = {k: (mean[k] - float(np.std([r[k] for r in runs])), mean[k] + float(np.std([r[k] for r in runs]))) for k in keys}
        results.append(MethodResult(
            f"random ({random_seeds} seeds, +-1 sd)", mean, spread, erc_curve=(erc_curves[0].x, np.mean([c.y for c in erc_curves], axis=0)),
            edc_curve=_mean_step_curve(edc_curves), random_baseline=True,
        ))  # fmt: skip
    return results


def erc_end(result: MethodResult) -> float | None:
    """The last discard fraction at which a method's ERC is defined (it stops where no
    non-mated or no mated pair is left to set a threshold on); None: defined throughout."""
    if result.erc_curve is None:
        return None
    x, y = result.erc_curve
    defined = np.isfinite(y)
    return None if defined.all() else float(x[defined][-1]) if defined.any() else 0.0


def _number(value: float) -> float | None:
    return None if np.isnan(value) else value


def results_table(results: Iterable[MethodResult]) -> tuple[list[dict], str]:
    """CSV rows and a Markdown table of the results. A value the ERC cannot give (its curve
    stops before the limit) is empty in the CSV and "-" with the curve's end in the table."""
    rows, lines = [], []
    results = list(results)
    edc = next((k for k in results[0].values if k.startswith("edc_pauc@") and not k.endswith("-best")), edc_key(0.2)) if results else edc_key(0.2)
    keys = [f"erc_auc@{int(limit * 100)}" for limit in AUC_LIMITS] + [edc, edc + "-best"]
    lines.append("| method | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---|" * len(keys))
    for result in results:
        row: dict = {"method": result.name}
        cells = []
        end = erc_end(result)
        for key in keys:
            value = result.values[key]
            low, high = result.intervals.get(key, (np.nan, np.nan))
            if np.isnan(value):
                low = high = np.nan
                cells.append(f"- (ERC ends at {end:.0%})" if key.startswith("erc") and end is not None else "-")
            else:
                cells.append(f"{value:.1f}" + (f" [{low:.1f}, {high:.1f}]" if not np.isnan(low) else ""))
            row.update({key: _number(value), f"{key}_low": _number(low), f"{key}_high": _number(high)})
        for key in keys:
            low, high = result.differences.get(key, (np.nan, np.nan))
            row.update({f"{key}_diff_low": _number(low), f"{key}_diff_high": _number(high)})
        rows.append(row)
        lines.append(f"| {result.name} | " + " | ".join(cells) + " |")
    paired = [r for r in results if r.differences]
    if paired:
        reference = next(iter(results)).name
        lines += ["", f"Paired 95% bootstrap interval of (method - {reference}); an interval above 0 means {reference} is better:", ""]
        lines.append("| method | " + " | ".join(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for result in paired:
            cells = ["-" if np.isnan(result.differences[k][0]) else f"[{result.differences[k][0]:.1f}, {result.differences[k][1]:.1f}]" for k in keys]
            lines.append(f"| {result.name} | " + " | ".join(cells) + " |")
    if any(erc_end(r) is not None for r in results):
        lines += ["", "An ERC stops where rejection leaves no non-mated or no mated pair to set its threshold on; "
                  "its AUC is given only up to limits the curve reaches (\"-\" beyond)."]  # fmt: skip
    return rows, "\n".join(lines) + "\n"


def curve_lines(results: Iterable[MethodResult], kind: str) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """What an ``erc`` or ``edc`` plot draws: (label, x, y, is the random baseline) per line.
    Methods with identical curves (flip and s_f from FaceQAN are one quantity) share a line."""
    lines: list[tuple[str, np.ndarray, np.ndarray, bool]] = []
    for result in results:
        curve = result.erc_curve if kind == "erc" else result.edc_curve
        if curve is None:
            continue
        x, y = curve
        label = "random (mean over seeds)" if result.random_baseline else result.name
        same = next((i for i, line in enumerate(lines) if np.array_equal(line[1], x) and np.array_equal(line[2], y, equal_nan=True)), None)
        if same is None:
            lines.append((label, x, y, result.random_baseline))
        else:
            lines[same] = (f"{lines[same][0]} = {label}", *lines[same][1:])
    return lines


def plot_curves(results: Iterable[MethodResult], path_prefix: str, title: str) -> list[str]:
    """erc.png and edc.png beside ``path_prefix``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = list(results)
    written = []
    for kind in ("erc", "edc"):
        figure, axes = plt.subplots(figsize=(6.4, 4.4))
        x_limit, top = (0.8 if kind == "erc" else 0.4), 0.0
        for label, x, y, is_random in curve_lines(results, kind):
            top = max(top, float(np.nanmax(y[x <= x_limit], initial=0.0)))
            style = {"color": "0.5", "linestyle": "--"} if is_random else {}
            if kind == "edc":
                axes.step(x, y, where="post", label=label, **style)
            else:
                axes.plot(x, y, label=label, **style)
        axes.set_xlabel("fraction of mated pairs discarded")
        axes.set_ylabel("FNMR" + (" (threshold re-derived at FMR)" if kind == "erc" else " (fixed threshold)"))
        axes.set_xlim(0, x_limit)
        axes.set_ylim(0, top * 1.05 or 1.0)  # what is in view, not the curves' tails past the limit
        axes.set_title(f"{kind.upper()}: {title}", fontsize=9)
        axes.legend(fontsize=7)
        figure.tight_layout()
        out = f"{path_prefix}{kind}.png"
        figure.savefig(out, dpi=120)
        plt.close(figure)
        written.append(out)
    return written
