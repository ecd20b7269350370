"""Register musicdata's Prefect deployments on the server that PREFECT_API_URL points at.

The programmatic twin of `infra/prefect.yaml` (same deployments, same defaults) for users without a
`prefect deploy` workflow. It creates the process work pool if it is missing, then registers each
deployment with `flow.from_source(<repo dir>, entrypoint).deploy(...)`, so a process worker on the
same host (or in the same image, where the repo sits at the same path) runs the code from that dir.

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python infra/deploy.py                      # pool `cpu`, nightly schedule created paused
    python infra/deploy.py --paths /mnt/midi --home /srv/musicdata --activate-schedule
    prefect worker start --pool cpu

Parameters set here are defaults only; `prefect deployment run ... --params '{...}'` overrides them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

REPO_DIR = Path(__file__).resolve().parents[1]
FLOWS_FILE = "flows/ingest_tokenize.py"
DEFAULT_POOL = "cpu"
DEFAULT_PATHS = ["/data/incoming"]
DEFAULT_HOME = "/data/musicdata-home"
DEFAULT_CRON = "0 2 * * *"


@dataclass(frozen=True)
class Spec:
    """One deployment: `<flow name>/<name>` running `FLOWS_FILE:<function>`."""

    flow_name: str
    function: str
    name: str
    description: str
    parameters: dict[str, Any]
    scheduled: bool = False
    tags: list[str] = field(default_factory=lambda: ["musicdata"])

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def specs(paths: list[str], home: str, encodings: list[str]) -> list[Spec]:
    return [
        Spec(
            "ingest-and-tokenize",
            "ingest_and_tokenize",
            "nightly",
            "Nightly: ingest new MIDI under the incoming paths, then tokenize every piece.",
            {"paths": paths, "home": home, "encodings": encodings},
            scheduled=True,
        ),
        Spec(
            "ingest",
            "ingest_flow",
            "on-demand",
            "Ingest files/folders/archives into the catalog now (no tokenization).",
            {"paths": paths, "home": home},
        ),
        Spec(
            "tokenize",
            "tokenize_flow",
            "on-demand",
            "Tokenize every ingested piece into the given encodings (e.g. a new encoding).",
            {"encodings": encodings, "home": home},
        ),
    ]


def api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def ensure_pool(name: str) -> bool:
    """Create process work pool `name` unless it exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            pass
        else:
            if pool.type != "process":
                print(f"note: work pool {name!r} exists with type {pool.type!r}, not 'process'")
            return False
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        except ObjectAlreadyExists:  # created concurrently by someone else: fine
            return False
    return True


def register(
    spec: Spec,
    *,
    source_dir: Path,
    pool: str,
    cron: str,
    timezone: str,
    activate_schedule: bool,
) -> UUID:
    from prefect import flow as prefect_flow
    from prefect.schedules import Cron

    loaded = prefect_flow.from_source(
        source=str(source_dir), entrypoint=f"{FLOWS_FILE}:{spec.function}"
    )
    if loaded.name != spec.flow_name:
        msg = f"{FLOWS_FILE}:{spec.function} is flow {loaded.name!r}, expected {spec.flow_name!r}"
        raise RuntimeError(msg)
    schedules = [Cron(cron, timezone=timezone, active=activate_schedule)] if spec.scheduled else []
    return loaded.deploy(
        name=spec.name,
        work_pool_name=pool,
        parameters=spec.parameters,
        description=spec.description,
        tags=spec.tags,
        schedules=schedules,
        # One run at a time per deployment: the DuckDB catalog has a single writer process.
        concurrency_limit=1,
        print_next_steps=False,
        ignore_warnings=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Create the work pool if missing and register musicdata's deployments "
        "on the Prefect server at PREFECT_API_URL.",
    )
    p.add_argument("--pool", default=DEFAULT_POOL, help="process work pool (default: %(default)s)")
    p.add_argument(
        "--source-dir",
        type=Path,
        default=REPO_DIR,
        help="repo dir the worker runs the flows from (default: this checkout, %(default)s)",
    )
    p.add_argument("--paths", nargs="+", default=DEFAULT_PATHS, help="inputs: %(default)s")
    p.add_argument("--home", default=DEFAULT_HOME, help="workspace folder (default: %(default)s)")
    p.add_argument("--encodings", nargs="+", default=["remi"], help="default: %(default)s")
    p.add_argument("--cron", default=DEFAULT_CRON, help="nightly schedule (default: %(default)s)")
    p.add_argument("--timezone", default="UTC", help="schedule timezone (default: %(default)s)")
    p.add_argument(
        "--activate-schedule",
        action="store_true",
        help="create the nightly schedule active (default: paused until you resume it; "
        "re-registering replaces the schedule, so pass this again to keep it active)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="FLOW/NAME",
        help="register only these deployments (default: all)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = api_url()
    if not url:
        print(
            "PREFECT_API_URL is not set: deployments need a running server, e.g.\n"
            "  prefect server start --host 127.0.0.1 --port 4200\n"
            "  export PREFECT_API_URL=http://127.0.0.1:4200/api",
            file=sys.stderr,
        )
        return 2
    source_dir = args.source_dir.expanduser().resolve()
    if not (source_dir / FLOWS_FILE).is_file():
        print(f"{source_dir / FLOWS_FILE} not found; pass --source-dir <repo>", file=sys.stderr)
        return 2
    chosen = specs(args.paths, args.home, args.encodings)
    if args.only:
        unknown = set(args.only) - {s.full_name for s in chosen}
        if unknown:
            known = ", ".join(s.full_name for s in chosen)
            print(f"unknown deployment(s) {sorted(unknown)}; known: {known}", file=sys.stderr)
            return 2
        chosen = [s for s in chosen if s.full_name in args.only]

    print(f"Prefect API: {url}")
    created = ensure_pool(args.pool)
    print(f"work pool {args.pool!r}: {'created (process)' if created else 'exists'}")
    for spec in chosen:
        dep_id = register(
            spec,
            source_dir=source_dir,
            pool=args.pool,
            cron=args.cron,
            timezone=args.timezone,
            activate_schedule=args.activate_schedule,
        )
        when = "on demand"
        if spec.scheduled:
            state = "active" if args.activate_schedule else "paused"
            when = f"cron {args.cron!r} {args.timezone} ({state})"
        print(f"deployment {spec.full_name} ({dep_id}): {when}, parameters {spec.parameters}")
    print(f"code from {source_dir}; start a worker with: prefect worker start --pool {args.pool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
