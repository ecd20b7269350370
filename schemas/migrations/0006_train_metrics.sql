-- Training as a stage: what a run trained on (manifest hash, preset), its per-step metrics (so
-- analysts plot training curves from SQL), and the MIDI it generated (lineage: checkpoint ->
-- generated piece). Lineage edges: shard:<id> -> train:<run>, train:<run> -> checkpoint:<id>,
-- checkpoint:<id> -> eval:<id> and -> generated:<id>.
ALTER TABLE core.train_runs ADD COLUMN preset VARCHAR;
ALTER TABLE core.train_runs ADD COLUMN manifest_hash VARCHAR;
ALTER TABLE core.train_runs ADD COLUMN out_dir VARCHAR;
ALTER TABLE core.train_runs ADD COLUMN target_steps BIGINT;
ALTER TABLE core.train_runs ADD COLUMN n_parameters BIGINT;
ALTER TABLE core.train_runs ADD COLUMN summary_json VARCHAR;

CREATE TABLE core.train_metrics (
    train_run_id  VARCHAR NOT NULL,
    step          BIGINT NOT NULL,
    split         VARCHAR NOT NULL,          -- train | validation
    name          VARCHAR NOT NULL,          -- loss, lr, grad_norm, tokens_per_s, nll, nll/<sub-token>
    value         DOUBLE NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (train_run_id, step, split, name)  -- a resumed run re-yields no duplicates
);

CREATE TABLE core.generations (
    generation_id VARCHAR PRIMARY KEY,       -- 'gen-' + checkpoint + sample index + params hash
    checkpoint_id VARCHAR NOT NULL,
    train_run_id  VARCHAR NOT NULL,
    sample_index  INTEGER NOT NULL,
    path          VARCHAR,                   -- the MIDI file, relative to the workspace (NULL: undecodable)
    sha256        VARCHAR,
    n_tokens      INTEGER NOT NULL,
    n_notes       INTEGER,
    error         VARCHAR,                   -- why the tokens did not decode to MIDI
    params_json   VARCHAR NOT NULL,          -- temperature, top_p, seed, max_new_tokens
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
