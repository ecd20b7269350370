-- Training and evaluation lineage: shards -> run -> checkpoint -> metric.
CREATE TABLE core.train_runs (
    train_run_id  VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,          -- the pipeline run that launched it
    model         VARCHAR NOT NULL,          -- nmt | cadenza | perceivers
    encoding      VARCHAR NOT NULL,
    encoding_config_hash VARCHAR NOT NULL,
    config_json   VARCHAR NOT NULL,
    device        VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP
);

CREATE TABLE core.checkpoints (
    checkpoint_id VARCHAR PRIMARY KEY,
    train_run_id  VARCHAR NOT NULL,
    step          BIGINT NOT NULL,
    path          VARCHAR NOT NULL,          -- safetensors file, relative to the workspace
    file_sha256   VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE core.eval_results (
    eval_id       VARCHAR NOT NULL,
    checkpoint_id VARCHAR,                   -- NULL for reference-vs-reference evaluations
    metric        VARCHAR NOT NULL,
    split         VARCHAR,
    value         DOUBLE NOT NULL,
    detail_json   VARCHAR,
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (eval_id, metric)
);
