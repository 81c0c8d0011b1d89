"""`make bench`: how many runs of each spec it takes, and that rewriting BENCHMARKS.md carries
over the sections written by hand."""

from __future__ import annotations

from pathlib import Path

from loadtest.bench import KEPT_HEADINGS, _kept_section, runs_of, specs

OLD = """# vqueue benchmarks

## Targets
run figures

## Profile

by hand: where a flush's time goes

## Exactness under the scenarios, drift check off (2026-12-02)

three rounds, 0 mismatches
"""


def test_the_hand_written_sections_are_carried_over_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(OLD)
    kept = "".join(_kept_section(path, heading) for heading in KEPT_HEADINGS)
    assert "## Profile\n\nby hand: where a flush's time goes\n" in kept
    assert "## Exactness under the scenarios, drift check off (2026-12-02)\n" in kept
    assert "three rounds, 0 mismatches" in kept
    assert "run figures" not in kept and "# vqueue benchmarks" not in kept


def test_no_old_file_keeps_nothing(tmp_path: Path) -> None:
    assert _kept_section(tmp_path / "absent.md", "## Profile") == ""


def test_every_run_with_a_target_is_taken_three_times() -> None:
    """The runs the issue's targets are judged on, the storms and the calls during a storm
    included, give a median of three (and its spread); the other scenarios one run each."""
    runs = {spec.name: runs_of(spec, 3) for spec in specs(quick=False)}
    assert runs == {
        "latency": 3,
        "fanout": 3,
        "storm": 3,
        "reconnect-storm": 3,
        "storm-calls": 3,
        "join-spike": 1,
        "slow-readers": 1,
    }
