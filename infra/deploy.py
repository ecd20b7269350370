"""Prepare the Prefect server PREFECT_API_URL points at for musicdata, then deploy.

1. Work pools: `cpu` (process) and `gpu` (process on one GPU machine; `--gpu-pool-type docker` or
   `kubernetes` with `--gpu-base-job-template` on a cluster). Existing pools are kept.
2. Concurrency limits on task tags (flows/policy.py): `gpu` = the GPUs on this host (1 on a
   CPU-only host: the model stages still run one at a time), `catalog-writer` = 1.
3. `prefect --no-prompt deploy --all --prefect-file infra/prefect.yaml` from the repo root: every
   deployment, its schedule (created paused) and its automations. infra/prefect.yaml is the one
   description of the deployments; this script never duplicates it.

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python infra/deploy.py                         # pools, limits, deployments (schedules paused)
    python infra/deploy.py --activate-schedules    # ... and turn the nightly schedules on
    python infra/worker.py --pool cpu & python infra/worker.py --pool gpu &
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]
PREFECT_FILE = "infra/prefect.yaml"
POOL_TYPES = ("process", "docker", "kubernetes")
# Set in every process this script starts (the deploy loads the flows' modules).
ENV_DEFAULTS = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def count_gpus() -> int:
    """NVIDIA GPUs on this host (`nvidia-smi -L`), 0 when there is none or no driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def base_job_template(pool_type: str, template: Path | None) -> dict[str, Any]:
    """The pool's base job template: a JSON file, else the process worker's default."""
    import json

    if template is not None:
        return json.loads(template.read_text())
    if pool_type != "process":
        msg = (
            f"a {pool_type} pool needs its base job template: pass --gpu-base-job-template "
            "(see docs/scaling.md), or create the pool yourself with `prefect work-pool create`"
        )
        raise SystemExit(msg)
    from prefect.workers.process import ProcessWorker

    return ProcessWorker.get_default_base_job_template()


def ensure_pool(name: str, pool_type: str, template: Path | None = None) -> bool:
    """Create work pool `name` unless it exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            pass
        else:
            if pool.type != pool_type:
                print(f"note: work pool {name!r} exists with type {pool.type!r}, kept as it is")
            return False
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=pool_type,
                    base_job_template=base_job_template(pool_type, template),
                )
            )
        except ObjectAlreadyExists:  # created concurrently by someone else: fine
            return False
    return True


def ensure_limit(tag: str, limit: int) -> None:
    """Set the concurrency limit of task tag `tag` (created, or updated to `limit`)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=limit)


def deploy(source_dir: Path, prefect_file: str, names: list[str] | None) -> int:
    """`prefect deploy` from the repo root (PWD set: infra/prefect.yaml's pull step uses it)."""
    prefect = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect) if prefect.exists() else "prefect", "--no-prompt", "deploy"]
    cmd += [a for n in names for a in ("--name", n)] if names else ["--all"]
    cmd += ["--prefect-file", prefect_file]
    env = {**ENV_DEFAULTS, **os.environ, "PWD": str(source_dir)}
    return subprocess.run(cmd, cwd=source_dir, env=env, check=False).returncode


def activate_schedules(prefect_file: Path) -> list[str]:
    """Resume every schedule of the deployments infra/prefect.yaml defines with one."""
    import yaml
    from prefect.client.orchestration import get_client

    spec = yaml.safe_load(prefect_file.read_text())
    wanted = {(d["entrypoint"], d["name"]) for d in spec["deployments"] if d.get("schedules")}
    done = []
    with get_client(sync_client=True) as client:
        for dep in client.read_deployments():
            if (dep.entrypoint, dep.name) not in wanted:
                continue
            for sched in dep.schedules:
                client.update_deployment_schedule(dep.id, sched.id, active=True)
            done.append(f"{dep.entrypoint} {dep.name}")
    return done


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Create musicdata's work pools and concurrency limits on the Prefect server "
        "at PREFECT_API_URL, then deploy infra/prefect.yaml.",
    )
    p.add_argument(
        "--cpu-pool", "--pool", default="cpu", help="process pool name (default: %(default)s)"
    )
    p.add_argument("--gpu-pool", default="gpu", help="GPU pool name (default: %(default)s)")
    p.add_argument("--gpu-pool-type", choices=POOL_TYPES, default="process")
    p.add_argument("--gpu-base-job-template", type=Path, help="JSON template (docker/kubernetes)")
    p.add_argument("--gpus", type=int, help="GPUs on this host (default: nvidia-smi's count)")
    p.add_argument(
        "--source-dir",
        type=Path,
        default=REPO_DIR,
        help="repo dir the workers run the flows from (default: this checkout, %(default)s)",
    )
    p.add_argument("--prefect-file", default=PREFECT_FILE, help="relative to --source-dir")
    p.add_argument("--name", nargs="+", metavar="FLOW/NAME", help="deploy only these")
    p.add_argument("--no-deploy", action="store_true", help="pools and limits only")
    p.add_argument(
        "--activate-schedules",
        action="store_true",
        help="turn the nightly schedules on after deploying (they are created paused; a later "
        "deploy pauses them again)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
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
    prefect_file = source_dir / args.prefect_file
    if not prefect_file.is_file():
        print(f"{prefect_file} not found; pass --source-dir <repo>", file=sys.stderr)
        return 2

    print(f"Prefect API: {url}")
    for name, kind, template in (
        (args.cpu_pool, "process", None),
        (args.gpu_pool, args.gpu_pool_type, args.gpu_base_job_template),
    ):
        created = ensure_pool(name, kind, template)
        print(f"work pool {name!r}: {'created (' + kind + ')' if created else 'exists'}")
    gpus = count_gpus() if args.gpus is None else args.gpus
    limits = {"gpu": max(1, gpus), "catalog-writer": 1}
    for tag, limit in limits.items():
        ensure_limit(tag, limit)
        note = " (no GPU found)" if tag == "gpu" and not gpus else ""
        print(f"concurrency limit {tag!r}: {limit}{note}")
    if args.no_deploy:
        return 0
    rc = deploy(source_dir, args.prefect_file, args.name)
    if rc:
        print(f"prefect deploy exited {rc}", file=sys.stderr)
        return rc
    if args.activate_schedules:
        for name in activate_schedules(prefect_file):
            print(f"schedule of {name}: active")
    print(
        f"code from {source_dir}; start workers with: python infra/worker.py --pool "
        f"{args.cpu_pool}  and  python infra/worker.py --pool {args.gpu_pool}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
