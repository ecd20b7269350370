"""Prefect flows: orchestration only; every task is a call into musicdata (DESIGN.md).

Importing this package changes nothing in the process: Prefect's settings (telemetry off, the
ephemeral server's start-up wait) are set where processes start: the `musicdata` CLI
(musicdata/cli/__init__.py), the worker's job environment (infra/prefect.yaml, infra/deploy.py),
the Makefile and tests/conftest.py.
"""
