"""The scale bench's table: the growing steps, the fixed 100,000 step and the balancer's, written
into BENCHMARKS.md in place of the previous table (the other sections kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.bench_scale import SECTION, render, write_section


def row(watchers: int, nodes: int, wrong: int = 0) -> dict[str, Any]:
    return {
        "watchers": watchers,
        "nodes": nodes,
        "update_p50_ms": 120,
        "update_p99_ms": 480,
        "final_checked": watchers,
        "final_mismatches": wrong,
        "kib_per_watcher": 9.5,
        "command": f"vqueue loadtest --watchers {watchers}",
    }


def result() -> dict[str, Any]:
    return {
        "steps": [row(10_000, 1), row(25_000, 2)],
        "fixed": row(100_000, 6),
        "balancer": row(9_000, 1),
        "load": "3.0 / 9.0",
    }


def test_the_table_has_every_step_the_fixed_one_and_the_balancer() -> None:
    text = render(result())
    assert "| 100,000 (fixed) | 6 | 120 / 480 | 100,000 / 0 | 9.5 |" in text
    assert "| 9,000 | 1 HAProxy |" in text
    assert "| 25,000 | 2 |" in text
    assert "3.0 / 9.0" in text
    assert text.count("- `vqueue loadtest") == 4


def test_the_section_replaces_the_previous_one_and_keeps_the_others(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# Benchmarks\n\n{SECTION}\n\nold table\n\n## Metrics\n\nkept\n")
    write_section(doc, render(result()))
    text = doc.read_text()
    assert "old table" not in text and text.count(SECTION) == 1
    assert text.startswith("# Benchmarks\n") and text.endswith("## Metrics\n\nkept\n")
    write_section(doc, render(result()))
    assert doc.read_text() == text  # written twice: the same file


def test_a_file_without_the_section_gets_it_at_the_end(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n")
    write_section(doc, render(result()))
    assert doc.read_text().startswith(f"# Benchmarks\n\n{SECTION}\n")
