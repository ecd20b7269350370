-- Core catalog: runs, inputs, pieces, quarantine, encodings, shards, lineage.
-- Base tables live in schema `core`; analysts query the stable views in `main` (views.sql).
CREATE SCHEMA IF NOT EXISTS core;

CREATE TABLE core.runs (
    run_id        VARCHAR PRIMARY KEY,
    command       VARCHAR NOT NULL,          -- ingest | tokenize | ...
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    status        VARCHAR NOT NULL,          -- running | completed | failed
    code_version  VARCHAR NOT NULL,
    config_json   VARCHAR NOT NULL,
    summary_json  VARCHAR
);

-- One row per (input path, content). The same bytes at two paths are two rows, one blob.
CREATE TABLE core.files (
    path          VARCHAR NOT NULL,          -- absolute path; archive members as 'archive!member'
    sha256        VARCHAR NOT NULL,
    size_bytes    BIGINT NOT NULL,
    kind          VARCHAR NOT NULL,          -- midi
    archive       VARCHAR,                   -- containing archive path, if any
    exact_duplicate_of VARCHAR,              -- first path these bytes were seen at, if not this one
    run_id        VARCHAR NOT NULL,
    first_seen_at TIMESTAMP NOT NULL,
    PRIMARY KEY (path, sha256)
);

-- What each stage did with each input, keyed by (stage, input, config hash incl. code version).
-- A rerun asks this table what is done (DESIGN rule 2).
CREATE TABLE core.stage_results (
    stage         VARCHAR NOT NULL,          -- ingest | tokenize:<encoding>
    input_id      VARCHAR NOT NULL,          -- sha256 (ingest) or piece_id (tokenize)
    config_hash   VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,          -- ok | quarantined
    output_id     VARCHAR,                   -- piece_id / shard_id
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (stage, input_id, config_hash)
);

CREATE TABLE core.pieces (
    piece_id      VARCHAR PRIMARY KEY,       -- 'p' + first 20 hex of the file sha256
    sha256        VARCHAR NOT NULL UNIQUE,
    content_hash  VARCHAR NOT NULL,          -- hash of the notes on a beat grid: same music, same hash
    split         VARCHAR NOT NULL,          -- train | validation | test
    near_duplicate_of VARCHAR,               -- canonical piece with the same content_hash
    blob_path     VARCHAR NOT NULL,          -- relative to the workspace
    duration_s    DOUBLE NOT NULL,
    n_notes       BIGINT NOT NULL,
    n_tracks      INTEGER NOT NULL,
    programs      INTEGER[] NOT NULL,
    has_drums     BOOLEAN NOT NULL,
    ticks_per_quarter INTEGER NOT NULL,
    tempo_bpm     DOUBLE,                    -- first tempo
    n_tempo_changes INTEGER NOT NULL,
    time_signatures VARCHAR[] NOT NULL,      -- distinct, in order of appearance
    pitch_min     INTEGER NOT NULL,
    pitch_max     INTEGER NOT NULL,
    ingest_config_hash VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE core.quarantine (
    path          VARCHAR NOT NULL,
    sha256        VARCHAR,                   -- NULL when the bytes were never read (unsafe member)
    stage         VARCHAR NOT NULL,          -- extract | ingest | tokenize:<encoding>
    reason        VARCHAR NOT NULL,          -- short machine-readable reason
    detail        VARCHAR NOT NULL,          -- human-readable: what failed and how to fix it
    config_hash   VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE core.encodings (
    encoding      VARCHAR NOT NULL,
    config_hash   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,          -- flat | compound
    vocab_size    INTEGER NOT NULL,
    config_path   VARCHAR NOT NULL,          -- tokenizer config saved beside the shards
    config_json   VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (encoding, config_hash)
);

CREATE TABLE core.shards (
    shard_id      VARCHAR PRIMARY KEY,
    encoding      VARCHAR NOT NULL,
    config_hash   VARCHAR NOT NULL,
    split         VARCHAR NOT NULL,
    path          VARCHAR NOT NULL UNIQUE,   -- relative to the workspace
    n_rows        BIGINT NOT NULL,
    n_tokens      BIGINT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    file_sha256   VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE core.shard_pieces (
    shard_id      VARCHAR NOT NULL,
    piece_id      VARCHAR NOT NULL,
    n_tokens      BIGINT NOT NULL,
    PRIMARY KEY (shard_id, piece_id)
);

-- Lineage graph: every stage writes edges between stable artifact ids.
CREATE TABLE core.lineage_edges (
    src_id        VARCHAR NOT NULL,          -- file:<sha256> | piece:<id> | encoding:<name>@<hash> | shard:<id>
    dst_id        VARCHAR NOT NULL,
    stage         VARCHAR NOT NULL,
    config_hash   VARCHAR NOT NULL,
    code_version  VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (src_id, dst_id, stage)
);
