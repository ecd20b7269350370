"""Audio: decode and validate recordings, transcribe them to MIDI (basic-pitch), EnCodec tokens.

Heavy imports (soundfile, TensorFlow, torch, transformers) happen inside the functions that need
them, so importing this package stays cheap.
"""

AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"})
