"""musicdata: reproducible data pipeline for music-generation research.

Heavy dependencies (torch, miditok, prefect, tensorflow) are imported inside the functions that need
them, so `import musicdata` stays cheap for workers and notebooks.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_dataset"]


def __getattr__(name: str) -> object:
    """`musicdata.load_dataset` without importing `datasets` at `import musicdata`."""
    if name == "load_dataset":
        from musicdata.datasets import load_dataset

        return load_dataset
    msg = f"module 'musicdata' has no attribute {name!r}"
    raise AttributeError(msg)
