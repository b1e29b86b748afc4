"""The report's figures, drawn with matplotlib as deterministic SVG (vector in the PDF).

This is the only module that touches matplotlib. Each function takes plain
arrays already present in results.json (curves, reliability bins, estimates)
and returns an SVG document as a string; nothing is computed beyond laying
the numbers out. Output is deterministic: a fixed ``svg.hashsalt`` for element
ids, no date in the metadata, text drawn as paths (no font lookup at render
time), so rendering twice gives identical bytes.

Methods drawn: ROC and precision-recall curves with pointwise confidence bands
(Hanley & McNeil 1982; Saito & Rehmsmeier 2015), reliability diagrams with bin
counts (Guo et al. 2017; Van Calster et al. 2016), forest plots of subgroup
estimates (Lewis & Clarke 2001), score histograms and training curves.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

_RC = {
    "svg.hashsalt": "auditkit-report",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.3,
    "text.usetex": False,
}

#: Colour of the internal test cohort, then of each further cohort (colour-blind safe, Okabe-Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
THRESHOLD_COLOUR = "#B00020"


def safe_label(text: Any, *, limit: int = 48) -> str:
    """Return ``text`` safe for a matplotlib label: '$' escaped (no mathtext), shortened to ``limit``."""
    label = str(text).replace("\n", " ")
    if len(label) > limit:
        label = label[: limit - 1] + "\u2026"
    return label.replace("$", r"\$")


def _to_svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "auditkit"})
    return buffer.getvalue()


def _figure(width_in: float, height_in: float, **margins: float) -> Figure:
    """Return a figure with fixed margins (fractions): a layout engine would double the drawing cost."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width_in, height_in), layout=None)
        fig.subplots_adjust(**margins)
        return fig


#: Width of one character of tick-label text in inches (6.5 pt DejaVu Sans, generous).
_CHAR_IN = 0.058


def _max_n(n: int) -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(n)


def _few_ticks(ax: Any, *, n: int = 5) -> None:
    """Limit an axis to about ``n`` ticks: every tick is several SVG nodes for WeasyPrint to draw."""
    ax.xaxis.set_major_locator(_max_n(n))
    ax.yaxis.set_major_locator(_max_n(n))


def _floats(values: Any) -> list[float]:
    return [float("nan") if v is None else float(v) for v in (values or [])]


def curve_svg(
    series: Sequence[Mapping[str, Any]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    diagonal: bool = False,
    baselines: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Return an SVG of curves with confidence bands (ROC or precision-recall).

    ``series`` items hold ``label``, ``x``, ``y`` and optional ``low``/``high``
    (the pointwise band), all sequences of equal length on [0, 1].
    ``baselines`` items hold ``label``, ``y`` and ``colour_index`` for
    horizontal reference lines (e.g. prevalence for a PR curve).
    """
    with matplotlib.rc_context(_RC):
        fig = _figure(3.3, 3.2, left=0.15, right=0.97, bottom=0.13, top=0.93)
        ax = fig.add_subplot()
        if diagonal:
            ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":", label="chance")
        for index, item in enumerate(series):
            colour = PALETTE[index % len(PALETTE)]
            x, y = _floats(item["x"]), _floats(item["y"])
            if item.get("low") and item.get("high"):
                ax.fill_between(x, _floats(item["low"]), _floats(item["high"]), color=colour, alpha=0.18, linewidth=0)
            ax.plot(x, y, color=colour, label=safe_label(item["label"], limit=60))
        for base in baselines:
            colour = PALETTE[int(base.get("colour_index", 0)) % len(PALETTE)]
            ax.axhline(float(base["y"]), color=colour, linewidth=0.7, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.grid(True)
        _few_ticks(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="lower right" if diagonal else "lower left", frameon=False)
        return _to_svg(fig)


def reliability_svg(panels: Sequence[Mapping[str, Any]]) -> str:
    """Return an SVG of reliability diagrams, one column per panel, bin counts beneath each.

    Panel items: ``title``, ``mean_predicted``, ``fraction_positive``,
    ``ci_low``/``ci_high`` (optional, per bin), ``count`` (per bin),
    ``bin_lower``/``bin_upper`` (bin edges for the count bars).
    """
    with matplotlib.rc_context(_RC):
        n = max(1, len(panels))
        width = min(7.0, 2.4 * n)
        fig = _figure(width, 3.2)
        grid = fig.add_gridspec(2, n, height_ratios=(3, 1), left=0.5 / width, right=0.98, bottom=0.13,
                                top=0.92, wspace=0.3, hspace=0.1)
        for col, panel in enumerate(panels):
            ax = fig.add_subplot(grid[0, col])
            bar = fig.add_subplot(grid[1, col], sharex=ax)
            ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":")
            x, y = _floats(panel["mean_predicted"]), _floats(panel["fraction_positive"])
            low, high = _floats(panel.get("ci_low")), _floats(panel.get("ci_high"))
            if low and high and len(low) == len(y):
                yerr = [[max(0.0, a - b) for a, b in zip(y, low, strict=True)],
                        [max(0.0, b - a) for a, b in zip(y, high, strict=True)]]
                ax.errorbar(x, y, yerr=yerr, fmt="o-", color=PALETTE[col % len(PALETTE)], markersize=2.5,
                            elinewidth=0.7, capsize=0)
            else:
                ax.plot(x, y, "o-", color=PALETTE[col % len(PALETTE)], markersize=2.5)
            smooth = panel.get("smooth") if isinstance(panel.get("smooth"), Mapping) else None
            if smooth and smooth.get("predicted"):
                sx, sy = _floats(smooth["predicted"]), _floats(smooth["observed"])
                s_low, s_high = _floats(smooth.get("observed_low")), _floats(smooth.get("observed_high"))
                if s_low and s_high and len(s_low) == len(sx) == len(s_high):
                    ax.fill_between(sx, s_low, s_high, color="#555555", alpha=0.18, linewidth=0)
                ax.plot(sx, sy, color="#333333", linewidth=1.0, label="smooth")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_title(safe_label(panel["title"], limit=60), fontsize=6.5)
            ax.set_ylabel("observed fraction positive" if col == 0 else "")
            ax.tick_params(labelbottom=False)
            lower, upper = _floats(panel.get("bin_lower")), _floats(panel.get("bin_upper"))
            counts = [int(c) for c in panel.get("count") or []]
            if counts and len(lower) == len(counts) == len(upper):
                # one step outline instead of a bar per bin: the same counts, far fewer SVG nodes
                edges = sorted({*lower, *upper})
                by_left = dict(zip(lower, counts, strict=True))
                filled = [by_left.get(left, 0) for left in edges[:-1]]
                bar.stairs(filled, edges, fill=True, color="#bbbbbb", edgecolor="#777777", linewidth=0.4)
                bar.set_ylim(0, 1.1 * max(counts))
            bar.set_xlabel("mean predicted probability")
            bar.set_ylabel("images per bin" if col == 0 else "")
            _few_ticks(ax)
            _few_ticks(bar, n=3)
        return _to_svg(fig)


def forest_svg(
    panels: Sequence[Mapping[str, Any]],
    *,
    row_labels: Sequence[str],
) -> str:
    """Return an SVG forest plot: one row per label, one column per panel (metric).

    Panel items: ``title``, ``rows`` (one ``{estimate, low, high}`` per row
    label, ``estimate`` None when undefined), optional ``reference`` (a
    vertical line, e.g. 0 for a gap) and ``thresholds`` (``{value, row}``
    gate thresholds; ``row`` None draws across all rows).
    """
    with matplotlib.rc_context(_RC):
        n_rows = max(1, len(row_labels))
        n_cols = max(1, len(panels))
        labels = [safe_label(label, limit=32) for label in row_labels]
        width = min(7.0, 1.7 + 1.9 * n_cols)
        height = 0.95 + 0.22 * n_rows
        left = min(0.45, (0.15 + _CHAR_IN * max((len(lab) for lab in labels), default=4)) / width)
        has_legend = any(p.get("thresholds") for p in panels)
        fig = _figure(width, height, left=left, right=0.98, top=1 - 0.3 / height,
                      bottom=(0.62 if has_legend else 0.38) / height, wspace=0.12)
        axes = fig.subplots(1, n_cols, sharey=True, squeeze=False)[0]
        ys = list(range(n_rows))[::-1]
        handle = None
        for ax, panel in zip(axes, panels, strict=False):
            colour = PALETTE[0]
            points, bars = [], []
            for y, row in zip(ys, panel["rows"], strict=False):
                value = row.get("estimate")
                if value is None:
                    ax.text(0.5, y, "not computable", transform=ax.get_yaxis_transform(), ha="center",
                            va="center", fontsize=5.5, color="#777777")
                    continue
                points.append((float(value), y))
                if row.get("low") is not None and row.get("high") is not None:
                    bars.append((y, float(row["low"]), float(row["high"])))
            # one collection per panel rather than an artist per row: far fewer SVG nodes
            if bars:
                ax.hlines([b[0] for b in bars], [b[1] for b in bars], [b[2] for b in bars], color=colour,
                          linewidth=1.0)
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], "s", color=colour, markersize=3.5,
                        linestyle="none")
            if panel.get("reference") is not None:
                ax.axvline(float(panel["reference"]), color="#777777", linewidth=0.7, linestyle=":")
            for threshold in panel.get("thresholds") or []:
                value = float(threshold["value"])
                row = threshold.get("row")
                if row is None:
                    handle = ax.axvline(value, color=THRESHOLD_COLOUR, linewidth=0.9, linestyle="--")
                else:
                    y = ys[int(row)]
                    (handle,) = ax.plot([value, value], [y - 0.4, y + 0.4], color=THRESHOLD_COLOUR,
                                        linewidth=1.2, linestyle="--")
            ax.set_title(safe_label(panel["title"]))
            ax.set_ylim(-0.7, n_rows - 0.3)
            ax.xaxis.set_major_locator(_max_n(4))
        axes[0].set_yticks(ys, labels)
        if handle is not None:
            fig.legend([handle], ["gate threshold"], loc="lower center", frameon=False, fontsize=5.5)
        return _to_svg(fig)


def score_histogram_svg(panels: Sequence[Mapping[str, Any]]) -> str:
    """Return an SVG of score histograms per cohort (positives and negatives as step lines).

    Panel items: ``title``, ``bin_edges`` (k+1 values), ``positive`` and
    ``negative`` (k counts each).
    """
    with matplotlib.rc_context(_RC):
        n = max(1, len(panels))
        cols = min(n, 3)
        rows = (n + cols - 1) // cols
        height = 1.9 * rows
        fig = _figure(min(7.0, 2.35 * cols), height, left=0.08 if cols > 1 else 0.2, right=0.98,
                      bottom=0.45 / height, top=1 - 0.25 / height, wspace=0.25, hspace=0.75)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, panel in zip(axes, panels, strict=False):
            edges = _floats(panel["bin_edges"])
            for key, colour, label in (("negative", PALETTE[0], "negative"), ("positive", PALETTE[1], "positive")):
                counts = [float(c) for c in panel.get(key) or []]
                if len(counts) == len(edges) - 1:
                    ax.stairs(counts, edges, color=colour, label=label, linewidth=1.1)
            ax.set_title(safe_label(panel["title"]))
            ax.set_xlabel("score")
            ax.set_ylabel("images")
            ax.set_xlim(edges[0] if edges else 0, edges[-1] if edges else 1)
            _few_ticks(ax, n=4)
            ax.legend(frameon=False)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        return _to_svg(fig)


def training_curves_svg(history: Sequence[Mapping[str, Any]], *, best_epoch: int | None = None) -> str:
    """Return an SVG of training and validation loss per epoch (validation AUROC on a right axis)."""
    with matplotlib.rc_context(_RC):
        fig = _figure(4.6, 2.6, left=0.11, right=0.88, bottom=0.3, top=0.95)
        ax = fig.add_subplot()
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
        handles = []
        for key, colour, label in (("train_loss", PALETTE[0], "training loss"), ("val_loss", PALETTE[1], "validation loss")):
            values = _floats([row.get(key) for row in history])
            if any(v == v for v in values):
                (line,) = ax.plot(epochs, values, "o-", color=colour, markersize=2.5, label=label)
                handles.append(line)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        aurocs = _floats([row.get("val_auroc") for row in history])
        if any(v == v for v in aurocs):
            right = ax.twinx()
            (line,) = right.plot(epochs, aurocs, "s--", color=PALETTE[2], markersize=2.2, linewidth=0.9,
                                 label="validation AUROC")
            right.set_ylabel("validation AUROC")
            right.set_ylim(0, 1)
            right.grid(False)
            right.spines["right"].set_visible(True)
            handles.append(line)
        if best_epoch is not None:
            handles.append(ax.axvline(best_epoch, color="#777777", linestyle=":", linewidth=0.9,
                                      label=f"chosen epoch ({best_epoch})"))
        fig.legend(handles=handles, frameon=False, loc="lower center", ncol=len(handles))
        return _to_svg(fig)
