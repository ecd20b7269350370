"""PyTorch models and their loading of shards; imports schemas only (never DuckDB or Prefect)."""
