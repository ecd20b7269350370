"""Benchmark rows carry a target and a verdict; the corpus generator makes distinct real-derived
files; the process meter sees a child's memory. (The benchmarks themselves are not timed tests.)"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import derived  # noqa: E402
import procs  # noqa: E402
import results  # noqa: E402
import table  # noqa: E402


@pytest.mark.parametrize(
    ("figure", "target", "want"),
    [
        ("**4.30x** (13.0 vs 3.0 s/it)", ">= 2x", True),
        ("**1.30x** (13.0 vs 10.0 s)", "<= 1.2x", False),
        ("**0.022x** (0.52 s vs 23.40 s)", "<= 0.25x at 16k", True),
        ("**41.9 files/s** (23.9 s)", ">= 42 files/s", False),
        ("**1,234 MB**", "<= 2,000 MB", True),
        ("held: **True**", "held", True),
        ("held: **False**", "held", False),
        ("**0.5232** (4.088 nats/note)", "paper SOD 0.549", None),
        ("**23.14x** (8.1 s vs 0.3 s)", "—", None),
    ],
)
def test_verdict_from_the_row_text(figure: str, target: str, want: bool | None) -> None:
    assert results.verdict({"what": "x", "figure": figure, "target": target}) is want


def test_an_explicit_verdict_wins() -> None:
    row = {"what": "x", "figure": "**9x**", "target": "<= 1x", "pass": True}
    assert results.verdict(row) is True
    assert results.verdict({**row, "pass": None}) is None


def test_every_saved_row_renders_with_target_and_result() -> None:
    rendered = table.render().splitlines()
    assert rendered[0].startswith("| what | figure | target | result |")
    rows = table.rows()
    assert rows, "benchmarks/results holds no saved rows"
    for doc, row, ok in rows:
        assert {"what", "figure", "target"} <= set(row), (doc["name"], row)
        assert ok in (True, False, None)
    assert len(rendered) == len(rows) + 2


def test_save_refuses_a_row_without_a_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    with pytest.raises(AssertionError, match="lacks"):
        results.save("x", [{"what": "a", "figure": "**1x**"}])
    path = results.save("x", [{"what": "a", "figure": "**1x**", "target": "<= 2x"}], command="c")
    assert results.load_all()[0]["command"] == "c" and path.name == "x.json"


def test_derived_corpus_is_distinct_real_music(tmp_path: Path) -> None:
    import symusic

    sources = [derived.FIXTURES / n for n in derived.FIXTURE_REAL]
    files = list(derived.derive(tmp_path / "c", 70, sources))
    assert len(files) == len({f.name for f in files}) == 70
    assert any("_x" in f.name for f in files)  # past 11 transpositions: excerpts
    digests = set()
    for f in files:
        score = symusic.Score.from_midi(f.read_bytes())
        assert score.note_num() >= derived.MIN_NOTES
        digests.add(hashlib.sha256(f.read_bytes()).hexdigest())
    assert len(digests) == 70
    again = list(derived.derive(tmp_path / "c", 70, sources))  # a cache: same names, same bytes
    assert again == files


def test_run_measured_sees_a_childs_memory_and_time() -> None:
    code = "import time; b = b'x' * (200 * 2**20); time.sleep(0.5)"
    m = procs.run_measured([sys.executable, "-c", code])
    assert m.peak_tree_mb >= 200 and m.peak_main_mb >= 200
    assert m.wall_s >= 0.5 and m.cpu_s >= 0
