"""The benchmark harness itself (a smoke run with tiny counts): speed is never asserted here."""

from __future__ import annotations

import pytest

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


def _check_figures(figures, sections):
    assert {figure.section for figure in figures} == set(sections)
    for figure in figures:
        assert figure.measured.samples, figure.measured.name
        assert all(sample >= 0 for sample in figure.measured.samples), figure.measured.name
        if figure.baseline is not None:
            assert figure.baseline.samples and figure.ratio is not None, figure.measured.name
        if figure.gate:
            assert figure.gate_passed is not None, figure.measured.name


def test_the_api_benchmark_drives_a_live_grove_api_with_wrk(tmp_path):
    from benchmarks import bench_api  # noqa: PLC0415

    output = tmp_path / "benchmarks.md"
    assert run.main(["--quick", "--only", "bench_api", "--output", str(output)]) == 0
    text = output.read_text()
    assert "## API (grove api, wrk)" in text
    for row in (
        "| GET /api/applications, 1 uvicorn worker |",
        "| GET /api/service/{id}, 1 uvicorn worker, p99 |",
        "| GET /api/applications, 2 uvicorn workers |",
        "| POST /api/auth/login over HTTP |",
    ):
        assert row in text
    assert "GET /api/docs, 1 uvicorn worker: " in text  # the same server's trivial route, same run
    assert "| GET /api/service/{id}, 1 uvicorn worker, httptools + uvloop |" in text
    assert "1 uvicorn worker, h11 + asyncio: " in text
    assert bench_api.SECTION in text


@pytest.mark.testbed
def test_the_deploy_benchmark_runs_through_grove_api_on_the_test_bed(testbed, tmp_path):
    from benchmarks import bench_deploy  # noqa: PLC0415
    from benchmarks.harness import write  # noqa: PLC0415

    figures = bench_deploy.run(quick=True, inventory=testbed.inventory)
    sections = [bench_deploy.SECTION, bench_deploy.BURST, bench_deploy.FOOTPRINT, bench_deploy.OPTIMISED]
    _check_figures(figures, sections)
    before_after = [f for f in figures if f.section == bench_deploy.OPTIMISED]
    assert len(before_after) == len(bench_deploy.OPTIMISATIONS) + 1  # each, and the burst with Mitogen
    assert all(f.baseline is not None and f.baseline.name.startswith("before") for f in before_after)
    names = [figure.measured.name for figure in figures]
    assert "POST instance until RUNNING, 2 one after another" in names
    assert "4 requests at once: ansible-playbook runs" in names
    assert "grove api idle (1 worker), RSS" in names
    runs = next(f for f in figures if f.measured.name == "4 requests at once: ansible-playbook runs")
    assert runs.measured.samples[0] >= 1
    latency = figures[0]
    assert latency.baseline is not None and latency.baseline.name.startswith("ctr run")
    assert any(note.startswith("Profile of a deploy") for note in figures[1].notes)
    output = tmp_path / "benchmarks.md"
    write(output, figures, {bench_deploy.SECTION: "intro", **bench_deploy.INTROS})
    assert "## Footprint" in output.read_text()
    # Everything the benchmark started is gone: its instances, its raw containers, its processes.
    for host in testbed.hosts:
        listed = testbed.host_shell(host, ["ctr", "-n", "grove", "containers", "ls", "-q"]).stdout.split()
        ours = ("bench-raw-", "latency.", "burst", "ab")
        assert not [name for name in listed if name.startswith(ours)], listed
        assert testbed.host_shell(host, ["ip", "netns", "list"]).stdout.count("bench-raw-") == 0
