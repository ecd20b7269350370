"""The dataset card (README.md): a YAML header the Hub and `datasets` read (configs with
data_files per split, license, task categories, tags, size category) and a body whose figures
all come from the catalog: statistics, compression and fidelity, the encodings' definitions,
lineage, how to load each config, and the papers to cite."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import yaml

from musicdata import __version__
from musicdata.catalog import publishing as pubsql

if TYPE_CHECKING:
    from musicdata.datasets import EncodingConfig
    from musicdata.publish.stage import StagedConfig

UNKNOWN_LICENSE = "other"
REPO_PLACEHOLDER = "<ORG/NAME>"

# BibTeX of the papers the encodings' defaults come from, by arXiv id (musicdata.encodings
# names them in each encoding's `paper`).
BIBTEX: dict[str, str] = {
    "2002.00212": "@inproceedings{huang2020pop,\n  title={Pop Music Transformer: Beat-based "
    "Modeling and Generation of Expressive Pop Piano Compositions},\n  author={Huang, Yu-Siang "
    "and Yang, Yi-Hsuan},\n  booktitle={Proceedings of the 28th ACM International Conference on "
    "Multimedia},\n  year={2020},\n  eprint={2002.00212},\n  archivePrefix={arXiv}\n}",
    "2101.02402": "@inproceedings{hsiao2021compound,\n  title={Compound Word Transformer: "
    "Learning to Compose Full-Song Music over Dynamic Directed Hypergraphs},\n  author={Hsiao, "
    "Wen-Yi and Liu, Jen-Yu and Yeh, Yin-Cheng and Yang, Yi-Hsuan},\n  booktitle={Proceedings "
    "of the AAAI Conference on Artificial Intelligence},\n  year={2021},\n  "
    "eprint={2101.02402},\n  archivePrefix={arXiv}\n}",
    "2106.05630": "@inproceedings{zeng2021musicbert,\n  title={MusicBERT: Symbolic Music "
    "Understanding with Large-Scale Pre-Training},\n  author={Zeng, Mingliang and Tan, Xu and "
    "Wang, Rui and Ju, Zeqian and Qin, Tao and Liu, Tie-Yan},\n  booktitle={Findings of the "
    "Association for Computational Linguistics: ACL-IJCNLP 2021},\n  year={2021},\n  "
    "eprint={2106.05630},\n  archivePrefix={arXiv}\n}",
    "1808.03715": "@article{oore2018time,\n  title={This Time with Feeling: Learning Expressive "
    "Musical Performance},\n  author={Oore, Sageev and Simon, Ian and Dieleman, Sander and Eck, "
    "Douglas and Simonyan, Karen},\n  journal={Neural Computing and Applications},\n  "
    "year={2018},\n  eprint={1808.03715},\n  archivePrefix={arXiv}\n}",
    "2408.01180": "@inproceedings{ryu2024nested,\n  title={Nested Music Transformer: "
    "Sequentially Decoding Compound Tokens in Symbolic Music and Audio Generation},\n  "
    "author={Ryu, Jiwoo and Dong, Hao-Wen and Jung, Jongmin and Jeong, Dasaem},\n  "
    "booktitle={Proceedings of the 25th International Society for Music Information Retrieval "
    "Conference},\n  year={2024},\n  eprint={2408.01180},\n  archivePrefix={arXiv}\n}",
    "2410.02060": "@misc{lenz2024cadenza,\n  title={Cadenza: A Generative Framework for "
    "Expressive Ideas \\& Variations},\n  author={Lenz, Julian and Mani, Anirudh},\n  "
    "year={2024},\n  eprint={2410.02060},\n  archivePrefix={arXiv}\n}",
    "2411.08307": "@misc{yi2024perceivers,\n  title={PerceiverS: A Multi-Scale Perceiver with "
    "Effective Segmentation for Long-Term Expressive Symbolic Music Generation},\n  "
    "author={Yi, Yungang and Li, Weihua and Kuo, Matthew and Bai, Quan},\n  year={2024},\n  "
    "eprint={2411.08307},\n  archivePrefix={arXiv}\n}",
    "2301.11975": "@inproceedings{fradet2023bpe,\n  title={Byte Pair Encoding for Symbolic "
    "Music},\n  author={Fradet, Nathan and Gutowski, Nicolas and Chhel, Fabien and Briot, "
    "Jean-Pierre},\n  booktitle={Proceedings of the 2023 Conference on Empirical Methods in "
    "Natural Language Processing},\n  year={2023},\n  eprint={2301.11975},\n  "
    "archivePrefix={arXiv}\n}",
}
_ARXIV_RE = re.compile(r"arXiv[ :]?(\d{4}\.\d{4,5})")


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    return next((label for bound, label in bounds if n < bound), "n>1B")


def arxiv_ids(paper: str | None) -> list[str]:
    return _ARXIV_RE.findall(paper or "")


def card_header(
    configs: list[StagedConfig], *, license_id: str, pretty_name: str
) -> dict[str, Any]:
    rows = max((sum(s["rows"] for s in c.splits.values()) for c in configs), default=0)
    header: dict[str, Any] = {"license": license_id}
    if license_id == UNKNOWN_LICENSE:
        header["license_name"] = "unspecified-sources"
    header.update(
        {
            "pretty_name": pretty_name,
            "task_categories": ["text-generation"],
            "tags": ["music", "midi", "symbolic-music", "tokenized", "musicdata"],
            "size_categories": [size_category(rows)],
            "configs": [
                {
                    "config_name": c.encoding,
                    "data_files": [
                        {"split": split, "path": f"data/{c.encoding}/{split}-*.parquet"}
                        for split in c.splits
                    ],
                    **({"default": True} if i == 0 else {}),
                }
                for i, c in enumerate(configs)
            ],
        }
    )
    return header


def _table(head: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _num(v: Any) -> Any:
    return float(v) if v is not None and not isinstance(v, int | float) else v


def _encoding_section(c: StagedConfig, params: dict[str, Any], repo: str) -> str:
    lines = [f"### `{c.encoding}`", ""]
    lines.append(f"- kind: {c.kind}; config hash `{c.config_hash}`; vocabulary {c.vocab_size:,}")
    if c.paper:
        lines.append(f"- defaults from: {c.paper}")
    if c.sub_tokens:
        sizes = c.sub_vocab_sizes or [None] * len(c.sub_tokens)
        subs = ", ".join(
            f"`{n}` ({s})" if s else f"`{n}`" for n, s in zip(c.sub_tokens, sizes, strict=True)
        )
        lines.append(f"- one compound token per step, sub-tokens (vocabulary each): {subs}")
    shown = {k: v for k, v in sorted(params.items()) if not str(k).startswith("tokenizer_")}
    lines += [
        f"- parameters: `{json.dumps(shown, sort_keys=True, default=str)}`",
        f"- tokenizer config: `{c.tokenizer_dir}/`",
        "",
    ]
    if c.tokenizer_class:
        mod = (
            "miditok" if c.tokenizer_class != "NBTokenizer" else "musicdata.encodings.nb_tokenizer"
        )
        lines += [
            "```python",
            "from huggingface_hub import snapshot_download",
            f"from {mod} import {c.tokenizer_class}",
            "",
            f'root = snapshot_download("{repo}", repo_type="dataset", '
            f'allow_patterns="{c.tokenizer_dir}/*")',
            f'tokenizer = {c.tokenizer_class}.from_pretrained(f"{{root}}/{c.tokenizer_dir}")',
            "```",
            "",
        ]
    else:
        lines += [
            f"Not a MidiTok tokenizer: `{c.tokenizer_dir}/` holds its JSON definition "
            "(vocabulary and parameters); `musicdata.encodings.get_encoding"
            f'("{c.encoding}", params)` rebuilds it.',
            "",
        ]
    return "\n".join(lines)


def card_facts(con: Any, configs: list[EncodingConfig], shard_ids: list[str]) -> dict[str, Any]:
    """Everything the card shows that comes from the catalog (one read connection)."""
    return {
        "figures": {
            c.encoding: pubsql.card_figures(con, c.encoding, c.config_hash) for c in configs
        },
        "provenance": pubsql.provenance(con, shard_ids),
        "params": {c.encoding: c.params for c in configs},
    }


def render_card(
    configs: list[StagedConfig],
    facts: dict[str, Any],
    *,
    license_id: str,
    pretty_name: str | None = None,
    repo_id: str | None = None,
) -> str:
    """The README.md of a staged dataset."""
    repo = repo_id or REPO_PLACEHOLDER
    name = pretty_name or f"musicdata: {', '.join(c.encoding for c in configs)}"
    header = card_header(configs, license_id=license_id, pretty_name=name)
    figures, prov, params = facts["figures"], facts["provenance"], facts["params"]
    out = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    out += [
        f"# {name}",
        "",
        f"Symbolic music as token sequences, {prov['pieces']:,} pieces in "
        f"{len(configs)} encoding(s), built with musicdata {__version__}. Each config is one "
        "encoding pinned to one tokenizer config (hash below), so a config never mixes "
        "vocabularies. Splits are leak-free: pieces with the same music (near duplicates) share "
        "a split.",
        "",
        "## Configs",
        "",
    ]
    rows = []
    for c in configs:
        f = figures[c.encoding]
        fid = f["fidelity"] or {}
        comp = f["compression"] or {}
        rows.append(
            [
                f"`{c.encoding}`",
                f"`{c.config_hash}`",
                c.kind,
                c.vocab_size,
                sum(s["rows"] for s in c.splits.values()),
                sum(s["tokens"] for s in c.splits.values()),
                _num(fid.get("fidelity")),
                _num(comp.get("length_vs_remi")),
            ]
        )
    head = ["config", "config hash", "kind", "vocab", "pieces", "tokens", "fidelity", "len/REMI"]
    out += [_table(head, rows), ""]
    out += [
        "*tokens* are sequence steps (a compound token counts once); *fidelity* is the share "
        "of source notes recovered by decode(encode(piece)) within the encoding's resolution; "
        "*len/REMI* is the total length relative to REMI on the same pieces.",
        "",
        "## Statistics per split",
        "",
    ]
    rows = [
        [
            f"`{c.encoding}`",
            s["split"],
            s["pieces"],
            s["tokens"],
            _num(s["mean_length"]),
            _num(s["median_length"]),
            _num(s["p95_length"]),
            s["max_length"],
        ]
        for c in configs
        for s in figures[c.encoding]["splits"]
        if s["split"] in c.splits
    ]
    head = ["config", "split", "pieces", "tokens", "mean", "median", "p95", "max"]
    out += [_table(head, rows), "", "## Compression and fidelity", ""]
    rows = []
    for c in configs:
        fid = figures[c.encoding]["fidelity"] or {}
        comp = figures[c.encoding]["compression"] or {}
        rows.append(
            [
                f"`{c.encoding}`",
                _num(comp.get("mean_length")),
                _num(comp.get("length_vs_remi")),
                _num(comp.get("vocab_vs_remi")),
                fid.get("notes"),
                fid.get("recovered"),
                _num(fid.get("fidelity")),
                fid.get("lossy_pieces"),
                fid.get("decode_errors"),
            ]
        )
    head = [
        "config",
        "mean length",
        "len/REMI",
        "vocab/REMI",
        "notes",
        "recovered",
        "fidelity",
        "lossy pieces",
        "decode errors",
    ]
    out += [_table(head, rows), "", "## Encodings", ""]
    out += [_encoding_section(c, params.get(c.encoding, {}), repo) for c in configs]
    out += _lineage_lines(prov)
    out += _usage_lines(configs, repo)
    out += _license_lines(license_id)
    out += _citation_lines(configs)
    return "\n".join(out).rstrip() + "\n"


def _lineage_lines(prov: dict[str, Any]) -> list[str]:
    kinds = ", ".join(f"{n:,} {k}" for k, n in prov["sources_by_kind"].items()) or "none"
    per_split = ", ".join(f"{s}: {n:,}" for s, n in prov["pieces_per_split"].items())
    lines = [
        "## Provenance and lineage",
        "",
        f"- pieces: {prov['pieces']:,} ({per_split}); near duplicates kept in their canonical "
        f"piece's split: {prov['near_duplicates']:,}",
        f"- source files: {kinds}; from {prov['archives']:,} archive(s)",
    ]
    if prov["hub_sources"]:
        lines.append(f"- Hugging Face datasets ingested: {', '.join(prov['hub_sources'])}")
    for t in prov["transcriptions"]:
        lines.append(
            f"- transcribed from audio: {t['pieces']:,} pieces by `{t['model_id']}` with "
            f"parameters `{t['params_json']}`"
        )
    quarantined = ", ".join(f"{r}: {n:,}" for r, n in prov["quarantine"].items()) or "none"
    lines += [
        f"- inputs quarantined in the workspace (not published), by reason: {quarantined}",
        f"- ingest config hash(es): {', '.join(f'`{h}`' for h in prov['ingest_configs'])}",
        f"- code version(s) that wrote the shards: {', '.join(prov['code_versions'])}",
        "- every file's sha256 is in `musicdata_manifest.json`; the workspace catalog records "
        "this publication with lineage from each shard it contains",
        "",
    ]
    return lines


def _usage_lines(configs: list[StagedConfig], repo: str) -> list[str]:
    first = configs[0]
    lines = [
        "## How to load",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
    ]
    lines += [
        f'{c.encoding.replace("-", "_")} = load_dataset("{repo}", "{c.encoding}")' for c in configs
    ]
    lines += [
        "```",
        "",
        "Flat encodings hold `tokens` as one id sequence per piece; compound ones as one "
        "sequence per named sub-token (`ds.features['tokens']` lists them in order). For "
        'PyTorch, `ds.with_format("torch")` and `musicdata.datasets.Collator(pad_id=0)` pad a '
        "batch into `input_ids` ([B, T] or [B, T, F]) and `attention_mask`:",
        "",
        "```python",
        "from torch.utils.data import DataLoader",
        "from musicdata.datasets import Collator",
        "",
        f'ds = load_dataset("{repo}", "{first.encoding}", split="train").with_format("torch")',
        "loader = DataLoader(ds, batch_size=8, collate_fn=Collator(pad_id=0))",
        "```",
        "",
        'A local copy of this folder loads the same way: `load_dataset("<folder>", '
        f'"{first.encoding}")`.',
        "",
    ]
    return lines


def _license_lines(license_id: str) -> list[str]:
    if license_id != UNKNOWN_LICENSE:
        return ["## License", "", f"`{license_id}`, as declared by the publisher.", ""]
    return [
        "## License",
        "",
        "Unspecified: the workspace catalog does not record the licenses of the source files, "
        "so none is claimed here. Check the terms of every source before reuse; a publisher who "
        "knows them re-stages with `--license <SPDX id>`.",
        "",
    ]


def _citation_lines(configs: list[StagedConfig]) -> list[str]:
    ids: list[str] = []
    for c in configs:
        ids += [i for i in arxiv_ids(c.paper) if i not in ids]
    lines = ["## Citation", "", "Please cite the papers whose encodings you use:", ""]
    for c in configs:
        lines.append(f"- `{c.encoding}`: {c.paper or 'no paper recorded'}")
    lines.append("")
    known = [BIBTEX[i] for i in ids if i in BIBTEX]
    if known:
        lines += ["```bibtex", "\n\n".join(known), "```", ""]
    other = [i for i in ids if i not in BIBTEX]
    if other:
        lines += [", ".join(f"arXiv:{i} (https://arxiv.org/abs/{i})" for i in other), ""]
    return lines
