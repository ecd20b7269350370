"""The fenced code blocks and relative links of README.md and docs/*.md (for test_examples.py).

A block's marker is the HTML comment on the line before its fence:
`<!-- not-run: reason -->` (it cannot run offline: a server, a GPU, the Hub) or
`<!-- slow: reason -->` (it runs only with `pytest -m slow`, e.g. it imports TensorFlow)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
SQL_LANGS = {"sql"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"^<!--\s*(?P<kind>not-run|slow)\s*:?\s*(?P<reason>.*?)\s*-->$")
# Commands and calls that write a workspace: such a block gets its own copy of the demo workspace.
WRITES_BASH = re.compile(
    r"\bmusicdata\b[^\n;|&]*?\b(ingest|transcribe|tokenize|train|evaluate|generate|variations"
    r"|demo|publish|report|metrics|views|stats)\b"
)
WRITES_PYTHON = re.compile(
    r"musicdata\.stages|record_evaluation|refresh_shard_views|\.catalog\.write\(|publish"
)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None = None  # the reason of `<!-- not-run: reason -->`, if any
    slow: str | None = None  # the reason of `<!-- slow: reason -->`, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def writes(self) -> bool:
        pattern = WRITES_BASH if RUN_LANGS.get(self.lang) == "bash" else WRITES_PYTHON
        return bool(pattern.search(self.code))

    def failure(self, what: str, output: str) -> str:
        """The message a failed example shows: where, what, the block and its output."""
        code = "\n".join(f"    {ln}" for ln in self.code.rstrip().splitlines())
        return (
            f"{self.where}: {what}\n--- the {self.lang} block\n{code}\n--- its output\n"
            f"{output[-6000:]}\n(fix the example or the code; an example that cannot run "
            "offline gets `<!-- not-run: reason -->` on the line before its fence)"
        )


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, with the marker of the line before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m["fence"], m["lang"].lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and not lines[i].strip().strip(fence[0])
        ):
            body.append(lines[i])
            i += 1
        prev = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        mark = MARKER.match(prev)
        kind, reason = (mark["kind"], mark["reason"]) if mark else (None, None)
        found.append(
            Block(
                path,
                start + 1,
                lang,
                "\n".join(body) + "\n",
                not_run=reason if kind == "not-run" else None,
                slow=reason if kind == "slow" else None,
            )
        )
        i += 1
    return found


def all_blocks() -> list[Block]:
    return [b for p in DOCS for b in blocks_of(p)]


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s|$)", re.MULTILINE)


def _prose(text: str) -> str:
    """The Markdown without fenced blocks and inline code (links there are not links)."""
    text = re.sub(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", "", text, flags=re.S | re.M)
    return re.sub(r"(`+).+?\1", "", text, flags=re.S)


def relative_links(path: Path) -> list[str]:
    """Targets of the Markdown links and images of one file that are not URLs or anchors."""
    prose = _prose(path.read_text(encoding="utf-8"))
    targets = [m["target"] for m in LINK.finditer(prose)]
    targets += [m["target"] for m in REF_LINK.finditer(prose)]
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t, re.I)]


def git_ignored(paths: list[Path]) -> set[Path]:
    """Which of these paths git ignores (a link into musicdata-home/ works only on this machine)."""
    if not paths or shutil.which("git") is None or not (ROOT / ".git").exists():
        return set()
    out = subprocess.run(
        ["git", "check-ignore", "--stdin"],
        cwd=ROOT,
        input="\n".join(str(p) for p in paths),
        capture_output=True,
        text=True,
        check=False,
    )
    return {Path(line) for line in out.stdout.splitlines()}
