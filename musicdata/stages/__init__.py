"""Stages as short drivers on one kit (kit.py): ingest, transcribe, tokenize, codec, train,
evaluate (+ generate). Each finds what is pending under its config hash, runs per-item work in
isolated workers, turns outcomes into catalog rows through one recorder, and writes outputs
atomically (through musicdata.store for shards). Heavy imports stay inside the modules."""
