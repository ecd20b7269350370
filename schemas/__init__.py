"""Schemas of everything musicdata persists: shard Arrow schemas, catalog DDL, config dataclasses.

This package imports only the standard library and pyarrow, so every layer may depend on it.
"""
