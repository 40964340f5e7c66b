"""Tables (plain text for the terminal, Markdown for files), JSON and plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def fmt(x, digits: int = 3) -> str:
    """A number as a person reads it: None -> "-", inf -> "inf", big ints with separators."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0:
            return "0"
        a = abs(x)
        if a >= 1000:
            return f"{x:,.0f}"
        if a >= 100:
            return f"{x:.1f}" if digits > 3 else f"{x:.0f}"
        if a >= 1:
            return f"{x:.{max(1, digits - 1)}f}" if a < 10 else f"{x:.1f}"
        return f"{x:.{digits}g}"
    return str(x)


def kib(nbytes) -> str:
    if nbytes is None:
        return "-"
    if nbytes >= 10 * 2**20:
        return f"{nbytes / 2**20:,.1f} MiB"
    return f"{nbytes / 2**10:,.1f} KiB"


def ratio(x) -> str:
    return "-" if x is None else (f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x")


class Table:
    """A titled table rendered as aligned text or Markdown."""

    def __init__(self, title: str, headers: list[str], rows: list[list], notes: list[str] | None = None):
        self.title, self.headers, self.notes = title, headers, list(notes or [])
        self.rows = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]

    def text(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h) for i, h in enumerate(self.headers)]
        line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
        out = [self.title, line(self.headers), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self, level: int = 3) -> str:
        out = [f"{'#' * level} {self.title}", "", "| " + " | ".join(self.headers) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"


def to_jsonable(x):
    """Plain JSON types; inf/nan become strings so the file stays standard JSON."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else ("inf" if x > 0 else "-inf" if x < 0 else "nan")
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    if hasattr(x, "tolist"):
        return to_jsonable(x.tolist())
    return str(x)


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(to_jsonable(data), indent=1) + "\n")


# ------------------------------------------------------------------ plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lines(path: Path, title: str, x, series: dict, xlabel: str, ylabel: str, logy: bool = True) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, (y, style) in series.items():
        ax.plot(x, y, style, label=label, linewidth=1.6)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_bars(path: Path, title: str, groups: list[str], series: dict, ylabel: str, logy: bool = False) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    n = len(series)
    width = 0.8 / max(1, n)
    xs = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        vals = [np.nan if v is None else v for v in values]
        bars = ax.bar(xs + (i - (n - 1) / 2) * width, vals, width, label=label)
        for b, v in zip(bars, vals):
            if np.isfinite(v):
                ax.annotate(fmt(v), (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels(groups, fontsize=8)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
