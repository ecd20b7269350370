-- Publications: a staged Hub dataset folder (one config per encoding, Parquet per split) and,
-- once uploaded, the repo, revision and commit it landed in. Lineage: shard:<id> -> publish:<id>.
-- The HF token is never stored here (nor anywhere else).
CREATE TABLE core.publishes (
    publish_id    VARCHAR PRIMARY KEY,       -- 'pub-' + staged time + manifest hash
    manifest_sha256 VARCHAR NOT NULL,        -- hash of the sorted (path, sha256) list of files
    repo_id       VARCHAR,                   -- ORG/NAME; NULL while only staged (dry run)
    revision      VARCHAR,                   -- branch the upload committed to
    private       BOOLEAN,
    encodings     VARCHAR[] NOT NULL,        -- config names, in order
    config_hashes VARCHAR[] NOT NULL,        -- the pinned encoding config of each, same order
    splits        VARCHAR[] NOT NULL,
    license       VARCHAR NOT NULL,          -- card license (SPDX id, or 'other')
    out_dir       VARCHAR NOT NULL,          -- the staging folder
    n_files       INTEGER NOT NULL,
    size_bytes    BIGINT NOT NULL,
    code_version  VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    staged_at     TIMESTAMP NOT NULL,
    uploaded_at   TIMESTAMP,
    commit_sha    VARCHAR,                   -- the Hub commit id (when online)
    commit_url    VARCHAR
);

CREATE TABLE core.publish_files (
    publish_id    VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,          -- relative to the staging folder (= path in the repo)
    sha256        VARCHAR NOT NULL,
    size_bytes    BIGINT NOT NULL,
    n_rows        BIGINT,                    -- Parquet files only
    PRIMARY KEY (publish_id, path)
);

CREATE OR REPLACE VIEW main.publishes AS SELECT * FROM core.publishes;
CREATE OR REPLACE VIEW main.publish_files AS SELECT * FROM core.publish_files;
