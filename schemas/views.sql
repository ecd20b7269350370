-- The analyst's contract: stable view names over core.* (recreated on every migration).
CREATE OR REPLACE VIEW main.runs AS SELECT * FROM core.runs;

CREATE OR REPLACE VIEW main.sources AS
SELECT f.path, f.sha256, f.size_bytes, f.kind, f.archive,
       f.exact_duplicate_of,
       CASE WHEN p.piece_id IS NOT NULL THEN 'ok' ELSE 'quarantined' END AS status,
       p.piece_id, f.run_id, f.first_seen_at
FROM core.files f LEFT JOIN core.pieces p ON p.sha256 = f.sha256;

CREATE OR REPLACE VIEW main.pieces AS SELECT * FROM core.pieces;

CREATE OR REPLACE VIEW main.quarantine AS
SELECT path, stage, reason, detail, sha256, config_hash, run_id, created_at FROM core.quarantine;

CREATE OR REPLACE VIEW main.encodings AS SELECT * FROM core.encodings;

CREATE OR REPLACE VIEW main.shards AS SELECT * FROM core.shards;

CREATE OR REPLACE VIEW main.token_stats AS
SELECT s.encoding, s.config_hash, s.split,
       count(*)                        AS pieces,
       sum(sp.n_tokens)::BIGINT        AS tokens,
       any_value(e.vocab_size)         AS vocab_size,
       avg(sp.n_tokens)                AS mean_length,
       median(sp.n_tokens)             AS median_length,
       quantile_cont(sp.n_tokens, 0.95) AS p95_length,
       max(sp.n_tokens)                AS max_length
FROM core.shard_pieces sp
JOIN core.shards s USING (shard_id)
JOIN core.encodings e ON e.encoding = s.encoding AND e.config_hash = s.config_hash
GROUP BY s.encoding, s.config_hash, s.split;

CREATE OR REPLACE VIEW main.lineage AS SELECT * FROM core.lineage_edges;

CREATE OR REPLACE VIEW main.train_runs AS SELECT * FROM core.train_runs;
CREATE OR REPLACE VIEW main.checkpoints AS SELECT * FROM core.checkpoints;
CREATE OR REPLACE VIEW main.eval_results AS SELECT * FROM core.eval_results;
