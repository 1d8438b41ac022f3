"""Report plots (matplotlib, headless): dev metric vs NCMI, per-task deltas, training curves.

Every plot of a report gives an objective the same colour (``colors``), shows every seed (a
point, or a thin line, per trial), and keeps tick labels few and short (scientific notation
for the small NCMI values, at most five ticks an axis)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _grid(n: int, width: float = 3.6, height: float = 3.0):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _panels(df: pd.DataFrame) -> pd.DataFrame:
    """Adds the panel title: the task, prefixed by model when the report spans several."""
    multi = df[["suite", "model"]].drop_duplicates().shape[0] > 1
    return df.assign(panel=(df["model"] + " / " + df["task"]) if multi else df["task"])


def colors(objectives) -> dict[str, str]:
    """One colour per objective for the whole report (ce first), so plots can be read side by side."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {o: cycle[i % len(cycle)] for i, o in enumerate(sorted(set(objectives), key=lambda o: (o != "ce", o)))}


def _readable(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    fmt = ScalarFormatter(useMathText=True)
    fmt.set_powerlimits((-2, 3))  # 0.0004 reads as 4 x 10^-4
    ax.xaxis.set_major_formatter(fmt)
    ax.tick_params(labelsize=8)


def _per_task(df: pd.DataFrame, title: str, xlabel: str, draw, palette: dict[str, str]) -> bytes:
    """One panel per task, one colour per objective; ``draw(ax, rows of one objective, colour)``."""
    df = _panels(df)
    panels = list(dict.fromkeys(df["panel"]))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels, strict=False):
        _readable(ax)  # first, so that a panel's own draw can refine its axes
        for obj, g in df[df["panel"] == panel].groupby("objective"):
            draw(ax, g, obj, palette[obj])
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("dev metric (%)")
        ax.grid(alpha=0.3)
    legend: dict = {}  # every objective once, whichever panels it appears in
    for ax in axes:
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(legend.values(), legend.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(y=1.03, t=title)
    return _png(fig)


def metric_vs_ncmi(per_trial: pd.DataFrame, palette: dict[str, str]) -> bytes:
    """One point per completed trial (each seed), its seed written beside it: dev NCMI (x) and dev
    headline metric (y), one panel per task."""

    def draw(ax, g, obj, color):
        ax.scatter(g["ncmi"], g["metric"], label=obj, color=color, s=28, alpha=0.85)
        for x, y, seed in zip(g["ncmi"], g["metric"], g["seed"], strict=True):
            ax.annotate(str(seed), (x, y), xytext=(3, 2), textcoords="offset points", fontsize=6, color=color)

    title = "Dev metric against NCMI, one point per trial (its seed beside it)"
    return _per_task(per_trial, title, "dev NCMI", draw, palette)


def deltas(significance: pd.DataFrame, deltas_: pd.DataFrame) -> bytes:  # colour: the sign of the delta
    """Per task: mean headline-metric difference to the baseline; error bars = the seed-aware 95% interval."""
    head = deltas_[deltas_["headline"]]
    multi = head["model"].nunique() > 1
    pairs = list(dict.fromkeys(zip(head["model"], head["objective"], head["baseline"], strict=True)))
    fig, axes = _grid(max(len(pairs), 1), width=4.5)
    for ax, (model, obj, base) in zip(axes, pairs, strict=False):
        d = head[(head["model"] == model) & (head["objective"] == obj) & (head["baseline"] == base)]
        s = significance[
            (significance["model"] == model) & (significance["objective"] == obj) & (significance["baseline"] == base)
        ].set_index("task")
        low = [d_ - s.loc[t, "ci_low"] if t in s.index else 0 for t, d_ in zip(d["task"], d["delta"], strict=True)]
        high = [s.loc[t, "ci_high"] - d_ if t in s.index else 0 for t, d_ in zip(d["task"], d["delta"], strict=True)]
        ax.bar(
            d["task"],
            d["delta"],
            yerr=[low, high],
            capsize=4,
            color=["tab:green" if v > 0 else "tab:red" for v in d["delta"]],
        )
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{model}: {obj} − {base}" if multi else f"{obj} − {base}")
        ax.set_ylabel("Δ dev metric (points)")
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(y=1.03, t="Per-task difference to the baseline (error bars: seed-aware 95% interval)")
    return _png(fig)


def training_curves(curves: pd.DataFrame, palette: dict[str, str]) -> bytes:
    """Per task: dev headline metric per epoch, a thin line per seed and a bold one for the mean."""

    def draw(ax, g, obj, color):
        for _, seed in g.groupby("seed"):
            ax.plot(seed["epoch"], seed["dev_metric"], color=color, lw=0.7, alpha=0.45)
        mean = g.groupby("epoch")["dev_metric"].mean()
        ax.plot(mean.index, mean.values, marker="o", label=obj, color=color, lw=2)

    def integer_epochs(ax, g, obj, color):
        draw(ax, g, obj, color)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(ScalarFormatter())

    title = "Training curves: dev metric per epoch (thin: each seed; bold: their mean)"
    return _per_task(curves, title, "epoch", integer_epochs, palette)


def render(report) -> dict[str, bytes]:
    t = report.tables
    if t["curves"].empty:
        return {}
    palette = colors(t["results"]["objective"])
    out = {
        "metric_vs_ncmi.png": metric_vs_ncmi(t["cmi_trials"][t["cmi_trials"]["space"] == "posterior"], palette),
        "training_curves.png": training_curves(t["curves"], palette),
    }
    if not t["deltas"].empty:
        out["deltas.png"] = deltas(t["significance"], t["deltas"])
    return out
