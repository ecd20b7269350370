"""musicdata: reproducible data pipeline for music-generation research.

Heavy dependencies (torch, miditok, prefect, tensorflow) are imported inside the functions that need
them, so `import musicdata` stays cheap for workers and notebooks.
"""

__version__ = "0.1.0"
