"""What every Grove benchmark reports: a figure next to the baseline measured in the same run.

These machines are shared and noisy, so a lone absolute time says little: each figure is the
median (and p95) of repeated samples beside a baseline sampled in the same run, and the ratio of
the two is the figure that counts. `make bench` collects the figures of every benchmark module,
prints them and writes docs/benchmarks.md.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile, so a p95 is always a value that was measured."""
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Series:
    """Repeated measurements of one thing, in `unit`."""

    name: str
    unit: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 0.95)


@dataclass
class Figure:
    section: str
    measured: Series
    baseline: Series | None = None
    # "lower" when less is better (times), "higher" when more is (throughput).
    better: str = "lower"
    gate: str = ""
    gate_passed: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline.median == 0:
            return None
        return self.measured.median / self.baseline.median


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def machine() -> dict[str, str]:
    memory_kb = 0
    try:
        with open("/proc/meminfo") as handle:
            memory_kb = int(handle.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def rows(figures: Iterable[Figure]) -> list[list[str]]:
    table = []
    for figure in figures:
        measured, baseline = figure.measured, figure.baseline
        ratio = figure.ratio
        gate = figure.gate
        if figure.gate and figure.gate_passed is not None:
            gate += " (met)" if figure.gate_passed else " (NOT met)"
        table.append(
            [
                measured.name,
                f"{_number(measured.median)} {measured.unit}",
                f"{_number(measured.p95)} {measured.unit}",
                f"{baseline.name}: {_number(baseline.median)} {baseline.unit}" if baseline else "",
                f"{ratio:.2f}x" if ratio is not None else "",
                gate,
            ]
        )
    return table


HEADER = ["figure", "median", "p95", "baseline (same run, median)", "ratio", "gate"]


def text_table(figures: list[Figure]) -> str:
    body = rows(figures)
    widths = [max(len(row[i]) for row in [HEADER, *body]) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [HEADER, *body]
    ]
    return "\n".join(lines)


def markdown(figures: list[Figure], info: dict[str, str], intro: dict[str, str]) -> str:
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (benchmarks/run.py); do not edit by hand. Every figure is the median",
        "(and p95) of repeated samples next to a baseline measured in the same run, because these",
        "machines are shared and noisy: the ratio is the figure that counts.",
        "",
        f"Machine: {info['cores']} cores, {info['memory']}, Linux {info['kernel']}, Python {info['python']}; "
        f"run {info['date']}.",
    ]
    sections: dict[str, list[Figure]] = {}
    for figure in figures:
        sections.setdefault(figure.section, []).append(figure)
    for section, members in sections.items():
        out += ["", f"## {section}", ""]
        if section in intro:
            out += [intro[section], ""]
        out.append("| " + " | ".join(HEADER) + " |")
        out.append("|" + "---|" * len(HEADER))
        out += ["| " + " | ".join(row) + " |" for row in rows(members)]
        notes = [note for figure in members for note in figure.notes]
        if notes:
            out.append("")
            out += [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def write(path: Path, figures: list[Figure], intro: dict[str, str]) -> None:
    path.write_text(markdown(figures, machine(), intro))
