"""The benchmark harness itself (a smoke run with tiny counts): speed is never asserted here."""

from __future__ import annotations

from benchmarks import run
from benchmarks.harness import Figure, Series, percentile


def test_percentile_is_a_measured_value():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(samples, 0.5) == 3.0
    assert percentile(samples, 0.95) == 5.0
    assert percentile([7.0], 0.95) == 7.0


def test_ratio_is_median_over_baseline_median():
    figure = Figure("s", Series("x", "ms", [2.0, 4.0, 9.0]), Series("b", "ms", [1.0, 2.0, 3.0]))
    assert figure.ratio == 2.0
    assert Figure("s", Series("x", "ms", [1.0])).ratio is None


def test_a_quick_run_writes_every_figure_beside_its_baseline(tmp_path):
    output = tmp_path / "benchmarks.md"
    assert run.main(["--quick", "--only", "bench_scheduler", "--output", str(output)]) == 0
    text = output.read_text()
    assert text.startswith("# Benchmarks")
    assert "## Scheduler" in text
    assert "| 200 workers, per decision |" in text
    assert "100 workers, per decision: " in text  # the baseline of the same run
    assert "cores" in text
