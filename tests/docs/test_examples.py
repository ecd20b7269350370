"""Every example in README.md and docs/*.md runs, so the docs cannot drift from the code.

Fenced blocks tagged `bash` or `python` are executed against a demo workspace built once per
session (docs_workspace.py); `sql` blocks are run against the demo catalog the way
`musicdata catalog sql` runs them (one statement at a time, read-only, relative paths against
the workspace). Each block is its own test, named `file:line` of its fence. A block that cannot
run offline (a Prefect server, a GPU, the Hub) has `<!-- not-run: reason -->` on the line before
its fence and shows up as skipped with that reason; `<!-- slow: reason -->` runs it only with
`pytest -m slow`. Every relative link in the docs must resolve to a file in the repo.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_blocks import (
    DOCS,
    ROOT,
    RUN_LANGS,
    SQL_LANGS,
    Block,
    all_blocks,
    git_ignored,
    relative_links,
)
from docs_workspace import Demo, Examples


def _params(langs: set[str]) -> list:
    out = []
    for b in all_blocks():
        if b.lang not in langs:
            continue
        marks = [pytest.mark.skip(reason=f"not-run: {b.not_run}")] if b.not_run else []
        marks += [pytest.mark.slow] if b.slow is not None else []
        out.append(pytest.param(b, id=b.where, marks=marks))
    return out


@pytest.mark.parametrize("block", _params(set(RUN_LANGS)))
def test_example_runs(block: Block, examples: Examples) -> None:
    """One bash or python block of the docs runs against the demo workspace and exits 0."""
    outcome = examples.outcome(block)
    if outcome.failure:
        pytest.fail(block.failure(outcome.failure, outcome.output), pytrace=False)


@pytest.mark.parametrize("block", _params(SQL_LANGS))
def test_sql_example_runs(block: Block, demo: Demo) -> None:
    """Every statement of one sql block runs as `musicdata catalog sql` would run it."""
    import duckdb

    from musicdata.catalog import CatalogError
    from musicdata.workspace import Workspace

    ws = Workspace.open(demo.home)
    statements = [s.query for s in duckdb.extract_statements(block.code)]
    assert statements, block.failure("holds no SQL statement", "")
    for sql in statements:
        try:
            ws.catalog.analyst_query(sql, readable=[ws.shards_dir], relative_to=ws.root)
        except (duckdb.Error, CatalogError) as exc:  # the docs' problem: show the statement
            pytest.fail(block.failure(f"statement failed:\n{sql}", repr(exc)), pytrace=False)


def test_markers_give_a_reason() -> None:
    """`<!-- not-run: -->` without a reason hides an example without saying why."""
    empty = [b.where for b in all_blocks() if b.not_run is not None and not b.not_run.strip()]
    assert not empty, f"not-run markers without a reason: {empty}"


def test_docs_have_examples_that_run() -> None:
    """The extraction finds the README's runnable examples (a broken fence parser finds none)."""
    readme = [b for b in all_blocks() if b.path.name == "README.md" and b.lang in RUN_LANGS]
    assert [b for b in readme if not b.not_run], "README.md: no runnable bash/python block found"


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link (and image) in README/docs names a file or folder in the repo."""
    resolved = {t: (path.parent / t.split("#", 1)[0]).resolve() for t in relative_links(path)}
    bad = [
        t
        for t, p in resolved.items()
        if not p.exists() or not p.is_relative_to(ROOT) or p == ROOT / ".git"
    ]
    ignored = git_ignored([p for t, p in resolved.items() if t not in bad])
    bad += [t for t, p in resolved.items() if p in ignored]
    where = path.relative_to(ROOT)
    assert not bad, f"{where}: links that do not resolve to a file in the repo: {bad}"
