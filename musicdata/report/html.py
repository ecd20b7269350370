"""Write a report as one static HTML page with its PNG figures and CSV tables beside it.

No template engine and no JavaScript: the page opens from disk in any browser, offline, and every
value is escaped.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

from musicdata.fsutil import atomic_write
from musicdata.report.model import Section, Table

FOLD_ROWS = 12  # longer tables are folded

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       margin: 0; color: #1d232b; background: #f6f7f9; }
header { background: #1f2d3d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9d3df; font-size: 13px; }
nav { padding: 8px 32px; background: #e9edf2; font-size: 13px; }
nav a { margin-right: 16px; color: #1f4e79; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1220px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 6px;
          padding: 12px 20px 16px; margin: 16px 0; }
h2 { font-size: 18px; margin: 4px 0 8px; }
h3 { font-size: 14px; margin: 14px 0 6px; color: #39475a; }
figure { margin: 8px 0; }
figure img { max-width: 100%; }
figcaption { font-size: 12px; color: #5a6b80; }
table { border-collapse: collapse; font-size: 12px; margin: 4px 0 6px; }
th, td { border-bottom: 1px solid #e3e8ee; padding: 3px 10px 3px 0; text-align: left;
         vertical-align: top; max-width: 520px; overflow-wrap: anywhere; }
th { color: #39475a; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { font-size: 12px; color: #5a6b80; }
summary { cursor: pointer; margin: 14px 0 6px; }
summary h3 { display: inline; }
"""


def fmt_value(value: Any, fmt: str = "") -> str:
    """One cell as text. Never rounds a value onto a different whole number (0.9998 stays
    0.9998, not "1"), booleans read yes/no, `fmt="percent"` shows a fraction as 99.98%."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if fmt == "percent" and isinstance(value, int | float | Decimal):
        return fmt_percent(float(value))
    if isinstance(value, float | Decimal):
        return _fmt_float(float(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _fmt_float(f: float) -> str:
    """Three decimals, more when three would round a fractional value to a whole number."""
    if not math.isfinite(f) or abs(f) >= 1e15:
        return str(f)
    for decimals in (3, 4, 5, 6, 8, 10):
        text = f"{f:,.{decimals}f}"
        if f == round(f) or float(text.replace(",", "")) != round(f):
            break
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_percent(fraction: float) -> str:
    """A fraction as a percentage with 2 decimals, more when 2 would show a value that is not
    exactly 1 (or 0) as 100.00% (or 0.00%): a lossy encoding never reads as lossless."""
    if not math.isfinite(fraction):
        return str(fraction)
    if fraction in (0.0, 1.0):
        return f"{100 * fraction:.0f}%"
    pct = 100 * fraction
    for decimals in (2, 3, 4, 5, 6):
        text = f"{pct:.{decimals}f}"
        if float(text) not in (100.0, 0.0):
            break
    return text + "%"


def _short(col: str, value: Any, fmt: str = "") -> str:
    text = fmt_value(value, fmt)
    return text[:10] if col == "config_hash" else text


def table_html(t: Table, csv_name: str | None) -> str:
    """A table under its title; a long one folds into <details> (no JavaScript needed)."""
    out = [f"<h3>{html.escape(t.title)}</h3>"]
    if not t.rows:
        return out[0] + '<p class="note">(no rows)</p>'
    folded = len(t.rows) > FOLD_ROWS
    if folded:
        out = [
            f"<details><summary><h3>{html.escape(t.title)}</h3> "
            f'<span class="note">({len(t.rows)} rows, click to show)</span></summary>'
        ]
    cols = list(t.rows[0])
    out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
    for row in t.rows[: t.max_rows]:
        cells = []
        for c in cols:
            v = row.get(c)
            num = isinstance(v, int | float | Decimal) and not isinstance(v, bool)
            cls = ' class="num"' if num else ""
            cells.append(f"<td{cls}>{html.escape(_short(c, v, t.formats.get(c, '')))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    extra = []
    if len(t.rows) > t.max_rows:
        extra.append(f"showing {t.max_rows} of {len(t.rows)} rows")
    if csv_name:
        extra.append(f'<a href="{html.escape(csv_name)}">CSV</a>')
    if t.note:
        extra.append(html.escape(t.note))
    if extra:
        out.append(f'<p class="note">{" · ".join(extra)}</p>')
    if folded:
        out.append("</details>")
    return "\n".join(out)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(
                {k: fmt_value(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows
            )

    atomic_write(path, write)


def write_html(sections: list[Section], out: Path, *, title: str, subtitle: str) -> Path:
    """Write index.html, figures/*.png and tables/*.csv under `out`; returns the page path."""
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    body = []
    for sec in sections:
        parts = [f'<section id="{sec.key}"><h2>{html.escape(sec.title)}</h2>']
        parts += [f"<p>{html.escape(t)}</p>" for t in sec.text]
        for fig in sec.figures:
            name = f"figures/{sec.key}-{fig.name}.png"
            atomic_write(out / name, lambda tmp, png=fig.png: tmp.write_bytes(png))
            parts.append(
                f'<figure><img src="{name}" alt="{html.escape(fig.caption)}">'
                f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
            )
        for i, t in enumerate(sec.tables):
            csv_name = None
            if t.rows:
                csv_name = f"tables/{sec.key}-{i}.csv"
                _write_csv(out / csv_name, t.rows)
            parts.append(table_html(t, csv_name))
        parts.append("</section>")
        body.append("\n".join(parts))
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(body)}</main></body></html>\n"
    )
    index = out / "index.html"
    atomic_write(index, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return index
