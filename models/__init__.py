"""PyTorch models and their data loading from shards; imports schemas only, never DuckDB or Prefect."""
