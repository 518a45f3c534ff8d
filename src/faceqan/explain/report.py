"""``faceqan report``: one self-contained HTML page about score files (the paper's Figs. 4 and 5).

Per score file: rows by status, quality quantiles, the run's settings, a contact sheet of
faces ranked best to worst (a sample spread evenly over the ranks), the lowest-scored faces
with their adversarial noise maps (FaceQAN outputs whose model can be loaded), and the
failures with their errors; above them, the quality distributions of all files overlaid.
Images are embedded as small JPEG / PNG data URIs: the page fetches nothing. Thumbnails are
cut from the original photo at the row's box, so a sheet costs one decode per shown face,
whatever the number of rows; a photo that moved or was deleted gets a placeholder and a note.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..extras import require
from ..faces.decode import decode_image
from ..sinks import read_rows, settings_file

REQUIRED_COLUMNS = ("path", "face", "box", "quality", "status", "error")
THUMB = 96


class ReportError(ValueError):
    """Input that is not a faceqan score output (the message names what is missing)."""


@dataclass
class ScoreFile:
    path: Path
    rows: list[dict]
    settings: dict = field(default_factory=dict)

    @property
    def scored(self) -> list[dict]:
        """Ok rows, best quality first."""
        ok = [r for r in self.rows if r.get("status") == "ok" and r.get("quality") not in ("", None)]
        return sorted(ok, key=lambda r: -float(r["quality"]))


def load_score_file(path: str | Path) -> ScoreFile:
    """Rows and settings of a ``faceqan score`` output; refuses files without its columns."""
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path} not found")
    try:
        rows = read_rows(path)
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} is not a faceqan score output: {exc}") from None
    columns = set(rows[0]) if rows else set()
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ReportError(f"{path} is not a faceqan score output: no column {', '.join(missing)}")
    sidecar = settings_file(path)
    settings = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return ScoreFile(path, rows, settings)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _jpeg(rgb: np.ndarray, quality: int = 80) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return _data_uri(buffer.getvalue(), "image/jpeg")


PLACEHOLDER = np.full((THUMB, THUMB, 3), 200, np.uint8)


def thumbnail(row: dict, cache: dict[str, np.ndarray | None]) -> tuple[str, str]:
    """A JPEG data URI of the face (cut at the row's box, with a margin) and a note ('' when fine)."""
    import cv2

    from ..faces.video import parse_frame_name

    path = row["path"]
    if path not in cache:
        try:
            cache[path] = None if parse_frame_name(path) else decode_image(path)
        except Exception:  # any unreadable file gets the placeholder; the note says so
            cache[path] = None
    rgb = cache[path]
    if rgb is None:
        return _jpeg(PLACEHOLDER), "image moved, deleted or unreadable"
    box = [float(v) for v in str(row.get("box") or "").split()]
    if len(box) == 4:
        x, y, w, h = box
        side = max(w, h) * 1.3
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        crop = rgb[y0 : int(cy + side / 2), x0 : int(cx + side / 2)]
        rgb = crop if crop.size else rgb
    return _jpeg(cv2.resize(rgb, (THUMB, THUMB), interpolation=cv2.INTER_AREA)), ""


def even_sample(count: int, size: int) -> list[int]:
    """``size`` indices spread evenly over ranks 0..count-1 (all when count <= size), first and last included."""
    if count <= size:
        return list(range(count))
    return sorted(set(np.linspace(0, count - 1, size).round().astype(int).tolist()))


def distribution_plot(files: list[ScoreFile]) -> str:
    """Histograms of quality, one per file, overlaid (Fig. 5), as a PNG data URI."""
    require("matplotlib", "plots", "faceqan report's distribution plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.2))
    for file in files:
        values = [float(r["quality"]) for r in file.scored]
        if values:
            axes.hist(values, bins=40, range=(0, 1), histtype="step", density=True, label=f"{file.path.name} ({file.settings.get('model', '?')})")
    axes.set_xlabel("quality Q")
    axes.set_ylabel("density")
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return _data_uri(buffer.getvalue(), "image/png")


def noise_maps(file: ScoreFile, rows: list[dict]) -> tuple[dict[str, str], str]:
    """Signed noise-map thumbnails (key: path|face) of ``rows`` from FaceQAN with the run's
    settings, and a note when they cannot be made (another method, a model file gone, ...)."""
    settings = file.settings
    if settings.get("method", "faceqan") != "faceqan" or not settings.get("model"):
        return {}, "noise maps: only for FaceQAN outputs with their settings file"
    import matplotlib

    try:
        from ..pipeline import chips_to_tensor
        from .run import scorer_from_settings

        scorer, preparer = scorer_from_settings(settings)
    except (ValueError, OSError, ImportError) as exc:
        return {}, f"noise maps: the run's model could not be loaded ({exc})"
    maps: dict[str, str] = {}
    for row in rows:
        faces = [f for f in preparer(row["path"]) if f.face == int(row["face"]) and f.chip is not None]
        if not faces:
            continue
        _, perturbation = scorer.explain(chips_to_tensor([faces[0].chip]))
        signed = perturbation[0].mean(dim=0).numpy()
        limit = float(np.abs(signed).max()) or 1.0
        colours = matplotlib.colormaps["RdBu_r"]((signed / limit + 1) / 2)[..., :3]
        maps[f"{row['path']}|{row['face']}"] = _jpeg((colours * 255).astype(np.uint8))
    return maps, ""


def _quantiles(values: list[float]) -> str:
    if not values:
        return "no scored faces"
    points = (0, 5, 25, 50, 75, 95, 100)
    numbers = np.percentile(values, points)
    return ", ".join(f"{'min' if p == 0 else 'max' if p == 100 else f'p{p}'} {v:.4f}" for p, v in zip(points, numbers))


def _scale_note(file: ScoreFile) -> str:
    """What quality_0_100 means for this file, or why it is empty."""
    values = [float(r["quality_0_100"]) for r in file.scored if r.get("quality_0_100") not in ("", None)]
    if not values:
        return "<p>quality_0_100: empty (no 0-100 scale fits this model and setting; fit one with <code>faceqan scale</code>).</p>"
    median = float(np.median(values))
    return (
        f"<p>quality_0_100 is the share of the scale's reference faces a score beats: a face at {median:.0f} (this file's median) "
        f"scores above {median:.0f} % of them, so a gate that rejects the lowest {median:.0f} % of such faces rejects it.</p>"
    )


def _face_card(row: dict, rank: int, image: str, note: str, extra: str = "") -> str:
    title = html.escape(f"{row['path']} (face {row['face']})")
    note_html = f'<div class="note">{html.escape(note)}</div>' if note else ""
    return (
        f'<figure class="face" data-rank="{rank}" data-path="{html.escape(row["path"])}" data-face="{row["face"]}" title="{title}">'
        f'<img src="{image}" alt="{title}" width="{THUMB}" height="{THUMB}">{extra}'
        f'<figcaption>#{rank} Q {float(row["quality"]):.4f}</figcaption>{note_html}</figure>'
    )


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
.sheet { display: flex; flex-wrap: wrap; gap: 6px; } .face { margin: 0; width: 100px; font-size: 0.72em; text-align: center; }
.face img { display: block; } .note { color: #a00; } .pair { display: flex; }
"""


def build_report(score_files: list[str | Path], sheet_size: int = 60, lowest: int = 12, with_noise_maps: bool = True) -> str:
    """The report's HTML for ``score_files``."""
    files = [load_score_file(p) for p in score_files]
    cache: dict[str, np.ndarray | None] = {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>faceqan report</title><style>{STYLE}</style></head><body>"]
    parts.append(f"<h1>faceqan report: {html.escape(', '.join(f.path.name for f in files))}</h1>")
    parts.append(f'<h2>Quality distribution</h2><img id="distribution" src="{distribution_plot(files)}" alt="quality distribution">')
    for index, file in enumerate(files):
        scored = file.scored
        statuses: dict[str, int] = {}
        for row in file.rows:
            statuses[row.get("status", "?")] = statuses.get(row.get("status", "?"), 0) + 1
        parts.append(f'<section class="file" id="file{index}"><h2>{html.escape(str(file.path))}</h2>')
        parts.append("<p>Rows by status: " + ", ".join(f"{html.escape(k)} {v}" for k, v in sorted(statuses.items())) + "</p>")
        parts.append(f"<p>Quality: {_quantiles([float(r['quality']) for r in scored])}</p>")
        parts.append(_scale_note(file))
        settings = {k: v for k, v in file.settings.items() if k != "provenance"}
        if settings:
            parts.append("<details><summary>Settings of the run</summary><table>" + "".join(
                f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in sorted(settings.items())) + "</table></details>")  # fmt: skip
        shown = even_sample(len(scored), sheet_size)
        parts.append(f"<h3>Ranked faces, best to worst ({len(shown)} of {len(scored)}, spread evenly over the ranks)</h3><div class='sheet'>")
        for i in shown:
            image, note = thumbnail(scored[i], cache)
            parts.append(_face_card(scored[i], i + 1, image, note))
        parts.append("</div>")
        worst = scored[-lowest:][::-1] if lowest else []
        if worst:
            maps, maps_note = noise_maps(file, worst) if with_noise_maps else ({}, "noise maps: not asked for")
            parts.append(f"<h3>Lowest-scored faces, with FaceQAN's adversarial noise (red +, blue -)</h3>{'<p>' + html.escape(maps_note) + '</p>' if maps_note else ''}<div class='sheet'>")
            for row in worst:
                image, note = thumbnail(row, cache)
                key = f"{row['path']}|{row['face']}"
                extra = f'<img class="noise" src="{maps[key]}" alt="noise map" width="{THUMB}" height="{THUMB}">' if key in maps else ""
                parts.append(_face_card(row, scored.index(row) + 1, image, note, extra))
            parts.append("</div>")
        failures = [r for r in file.rows if r.get("status") != "ok"]
        parts.append(f"<h3>Failures ({len(failures)})</h3>")
        if failures:
            parts.append("<table><tr><th>path</th><th>status</th><th>error</th></tr>" + "".join(
                f"<tr><td>{html.escape(str(r['path']))}</td><td>{html.escape(str(r['status']))}</td><td>{html.escape(str(r['error']))}</td></tr>"
                for r in failures[:500]) + "</table>")  # fmt: skip
            if len(failures) > 500:
                parts.append(f"<p>... and {len(failures) - 500} more (see the score file).</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(score_files: list[str | Path], output: str | Path, **options) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(build_report(score_files, **options), encoding="utf-8")
    temporary.replace(output)
    return output
