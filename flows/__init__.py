"""Prefect flows: orchestration only; every task is a call into musicdata (DESIGN.md)."""

import os

# Prefect's telemetry tries the network; this project runs offline (ENVIRONMENT.md).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary server of Prefect's ephemeral mode logs harmless shutdown races at ERROR level.
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
# A first start on a fresh PREFECT_HOME migrates its SQLite database; on 2 cores that can take
# longer than Prefect's default wait for the ephemeral server.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
