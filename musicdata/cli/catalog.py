"""`musicdata catalog ...`: queries over the DuckDB catalog. Every command but `views` only
reads; `views` recreates the in-place views over the shards."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from musicdata.cli.common import JsonOpt, catalog_app, emit, fail, table_text, workspace


@catalog_app.command("sql")
def catalog_sql(
    query: Annotated[str, typer.Argument(help="SQL over the views (sources, pieces, ...).")],
    as_json: JsonOpt = False,
) -> None:
    """Run one read-only SQL query (safe while a pipeline is writing).

    Only SELECT (WITH, FROM, DESCRIBE, SUMMARIZE, SHOW, EXPLAIN SELECT) is accepted: no writes,
    ATTACH, COPY, INSTALL/LOAD or settings. Files can be read only under the workspace's
    shards/ (relative paths such as 'shards/remi/*/*/*.parquet' resolve against the workspace)."""
    import duckdb

    from musicdata.catalog import CatalogError, QueryRefused

    ws = workspace()
    try:
        rows = ws.catalog.analyst_query(
            query, readable=[ws.shards_dir], relative_to=ws.root
        ).to_pylist()
    except QueryRefused as exc:
        fail(str(exc), error="query_refused", hint=SQL_HINT)
    except CatalogError as exc:
        fail(str(exc), error="catalog")
    except duckdb.PermissionException as exc:
        fail(
            f"query refused: {exc}",
            error="query_refused",
            hint=f"catalog sql reads files only under {ws.shards_dir}; if the workspace folder "
            "moved, run `musicdata catalog views` to point the views there",
        )
    except duckdb.Error as exc:
        fail(f"query failed: {exc}", error="query_failed", hint=SQL_HINT)
    emit(
        {"rows": rows, "count": len(rows), "home": str(ws.root)},
        as_json,
        table_text(rows) if rows else "(no rows)",
    )


SQL_HINT = (
    "send one SELECT over the views (`musicdata catalog stats` lists them; `vocab` names token "
    "ids); files are readable only under the workspace's shards/"
)


@catalog_app.command("verify")
def catalog_verify(as_json: JsonOpt = False) -> None:
    """Check every shard file against the catalog (exit 1 when anything disagrees).

    sha256, piece ids, duplicates across shards, orphan and temp files under shards/."""
    from musicdata.catalog import CatalogError
    from musicdata.catalog.verify import verify

    ws = workspace()
    try:
        problems = verify(ws)
        n_shards = ws.catalog.query("SELECT count(*) AS n FROM core.shards").column(0)[0].as_py()
    except CatalogError as exc:
        fail(str(exc))
    rows = [p.to_dict() for p in problems]
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    summary = {
        "home": str(ws.root),
        "ok": not problems,
        "shards": n_shards,
        "problems": rows,
        "counts": kinds,
    }
    line = (
        f"verify: {n_shards} shards match the catalog, nothing else under shards/"
        if not problems
        else f"verify: {len(problems)} problem(s) in {n_shards} shards: "
        + ", ".join(f"{k}: {v}" for k, v in kinds.items())
    )
    emit(
        summary,
        as_json,
        *([table_text([{**r, "shard_id": r["shard_id"] or ""} for r in rows])] if rows else []),
        line,
    )
    if problems:
        raise typer.Exit(1)


@catalog_app.command("stats")
def catalog_stats(as_json: JsonOpt = False) -> None:
    """Show counts per view, token statistics and quarantine reasons."""
    from musicdata.catalog import CatalogError, records

    ws = workspace()
    try:
        ws.catalog.migrate()  # an older catalog is brought up to date by this command
        with ws.catalog.read() as con:
            counts = records.table_counts(con)
        tokens = ws.catalog.query("SELECT * FROM token_stats ORDER BY encoding, split").to_pylist()
        reasons = ws.catalog.query(
            "SELECT stage, reason, count(*) AS n FROM quarantine GROUP BY ALL ORDER BY n DESC"
        ).to_pylist()
    except CatalogError as exc:
        fail(str(exc))
    summary = {
        "home": str(ws.root),
        "counts": counts,
        "token_stats": tokens,
        "quarantine_reasons": reasons,
    }
    emit(
        summary,
        as_json,
        f"catalog {ws.catalog_path}",
        ", ".join(f"{k}: {v}" for k, v in counts.items()),
        *([table_text(tokens)] if tokens else []),
        *([table_text(reasons)] if reasons else []),
    )


@catalog_app.command("lineage")
def catalog_lineage(
    node: Annotated[
        str,
        typer.Argument(
            help="Node id (file:<sha256>, piece:<id>, shard:<id>, checkpoint:<id>...),"
            " a source path or a bare piece/shard id."
        ),
    ],
    downstream: Annotated[
        bool,
        typer.Option(
            "--downstream/--upstream", help="What this fed (downstream) or what fed it (default)."
        ),
    ] = False,
    kind: Annotated[
        str | None,
        typer.Option(help="Only list the reached nodes of this kind, e.g. file (no edges)."),
    ] = None,
    depth: Annotated[int, typer.Option(help="Stop after this many steps.")] = 32,
    width: Annotated[int, typer.Option(help="Children shown per node in the tree.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Walk the lineage graph: which raw files fed a checkpoint, what a file became."""
    from musicdata.catalog import CatalogError, publishing  # noqa: F401 - registers publish:
    from musicdata.catalog.lineage import lineage, node_kind, resolve

    ws = workspace()
    try:
        ws.catalog.migrate()  # an older catalog is brought up to date, as `catalog stats` does
        with ws.catalog.read() as con:
            try:
                root = resolve(con, node)
            except ValueError as exc:
                fail(str(exc))
            graph = lineage(con, root, "downstream" if downstream else "upstream", max_depth=depth)
    except CatalogError as exc:
        fail(str(exc))
    data = graph.to_dict()
    if kind:  # a listing: the nodes of one kind (edges of a big walk would drown them)
        data["nodes"] = [n for n in data["nodes"] if n["kind"] == kind]
        del data["edges"]
        human = table_text(data["nodes"]) if data["nodes"] else f"(no {kind} nodes)"
    else:
        human = _lineage_tree(graph, width)
    kinds: dict[str, int] = {}
    for n in graph.nodes()[1:]:
        kinds[node_kind(n)] = kinds.get(node_kind(n), 0) + 1
    data["counts"] = kinds
    summary_line = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) or "nothing"
    if as_json:
        emit(data, as_json)
        return
    # Wide output when piped (ids and paths are long); fold, never crop, on a terminal.
    out = Console(soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 400)
    out.print(human)
    out.print(f"{graph.direction}: {summary_line}")


def _lineage_tree(graph: Any, width: int) -> Any:
    """A rich Tree; a node reached twice (a DAG) is expanded once and marked the other times.
    Labels are Text, not markup: ids like `train:00000` must not turn into emoji."""
    from rich.text import Text
    from rich.tree import Tree

    children = graph.children()

    def label(node: str, edge: Any = None, seen: bool = False) -> Text:
        text = Text(node, style="bold", overflow="fold")
        desc = graph.descriptions.get(node, "")
        if desc:
            text.append(f"  {desc}")
        if edge is not None:
            text.append(f"  ({edge.stage}, run {edge.run_id[:8]})", style="dim")
        if seen:
            text.append("  (see above)", style="dim")
        return text

    tree = Tree(label(graph.root))
    expanded = {graph.root}
    stack = [(tree, graph.root)]
    while stack:
        branch, node = stack.pop()
        edges = children.get(node, [])
        for edge in edges[:width]:
            far = edge.src_id if graph.direction == "upstream" else edge.dst_id
            if far in expanded:
                branch.add(label(far, edge, seen=True))
                continue
            expanded.add(far)
            stack.append((branch.add(label(far, edge)), far))
        if len(edges) > width:
            more = f"… and {len(edges) - width} more (raise --width, or use --json)"
            branch.add(Text(more, style="dim"))
    return tree


@catalog_app.command("views")
def catalog_views(as_json: JsonOpt = False) -> None:
    """Recreate the in-place views over the shards (writes; after the workspace moved).

    The pipeline refreshes them itself after new shards; run this after moving the workspace
    folder (the views hold absolute paths) and to list them."""
    from musicdata.catalog import CatalogError
    from musicdata.catalog.shard_views import refresh_shard_views
    from musicdata.store.vocab import backfill_vocab

    ws = workspace()
    try:
        with ws.catalog.write() as con:  # one short transaction; also migrates an old catalog
            vocab_rows = backfill_vocab(con)  # configs tokenized before the `vocab` view
            names = refresh_shard_views(con, ws.root)
        rows = ws.catalog.query(
            "SELECT view_name, encoding, kind, n_fields, len(config_hashes) AS configs "
            "FROM shard_views ORDER BY view_name"
        ).to_pylist()
    except CatalogError as exc:
        fail(str(exc))
    emit(
        {"home": str(ws.root), "views": names, "shard_views": rows, "vocab_rows_added": vocab_rows},
        as_json,
        *([table_text(rows)] if rows else ["(no token shards yet)"]),
        "analyst views: " + ", ".join(n.removeprefix("main.") for n in names if "main." in n),
    )
