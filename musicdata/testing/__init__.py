"""Importable test dummies (as lhotse ships its own): a synthetic corpus written exactly like the
pipeline writes one, synthesized audio, and loop oracles the metrics are checked against."""
