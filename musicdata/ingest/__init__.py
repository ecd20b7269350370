"""Ingest: expand inputs, store bytes by sha256, parse in isolation, validate, dedup, split."""
