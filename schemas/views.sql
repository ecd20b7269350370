-- The analyst's contract: stable view names over core.* (recreated on every migration).
CREATE OR REPLACE VIEW main.runs AS SELECT * FROM core.runs;

CREATE OR REPLACE VIEW main.pieces AS SELECT * FROM core.pieces;

-- A later success clears an input's earlier ingest verdict (a path that was missing, or refused
-- while the disk was full, and ingested fine later); core.quarantine keeps the history.
CREATE OR REPLACE VIEW main.quarantine AS
SELECT q.path, q.stage, q.reason, q.detail, q.sha256, q.config_hash, q.run_id, q.created_at
FROM core.quarantine q
WHERE NOT (q.stage IN ('extract', 'ingest', 'ingest:audio') AND EXISTS (
    SELECT 1 FROM core.files f
    WHERE f.path = q.path AND f.first_seen_at >= q.created_at
      AND (EXISTS (SELECT 1 FROM core.pieces p WHERE p.sha256 = f.sha256)
           OR EXISTS (SELECT 1 FROM core.recordings r WHERE r.sha256 = f.sha256))));

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

-- Round-trip fidelity per encoding config: share of source notes recovered by decode(encode(x)).
CREATE OR REPLACE VIEW main.fidelity AS
SELECT f.encoding, f.config_hash, any_value(e.lossless) AS lossless,
       count(*)                                   AS pieces,
       sum(f.notes)::BIGINT                       AS notes,
       sum(f.recovered)::BIGINT                   AS recovered,
       sum(f.recovered) / nullif(sum(f.notes), 0) AS fidelity,
       min(f.recovered / nullif(f.notes, 0))      AS worst_piece,
       count(*) FILTER (WHERE f.recovered < f.notes) AS lossy_pieces,
       count(f.error)                             AS decode_errors
FROM core.fidelity f
LEFT JOIN core.encodings e USING (encoding, config_hash)
GROUP BY f.encoding, f.config_hash;

-- Compression report: encodings compared on the pieces that every listed encoding config holds.
-- Lengths are sequence steps (a compound token counts once); vocab_size sums compound fields.
CREATE OR REPLACE VIEW main.compression AS
WITH lens AS (
    SELECT s.encoding, s.config_hash, sp.piece_id, sp.n_tokens
    FROM core.shard_pieces sp JOIN core.shards s USING (shard_id)
    WHERE s.encoding IN (SELECT encoding FROM core.encodings WHERE kind IN ('flat', 'compound'))
), configs AS (
    SELECT DISTINCT encoding, config_hash FROM lens
), common AS (
    SELECT piece_id FROM lens GROUP BY piece_id
    HAVING count(DISTINCT (encoding, config_hash)) = (SELECT count(*) FROM configs)
), remi AS (
    SELECT l.piece_id, l.n_tokens, e.vocab_size
    FROM lens l JOIN core.encodings e USING (encoding, config_hash)
    WHERE l.encoding = 'remi' AND l.config_hash = (
        SELECT config_hash FROM core.encodings WHERE encoding = 'remi'
        ORDER BY created_at DESC LIMIT 1)
)
SELECT l.encoding, l.config_hash, any_value(e.kind) AS kind,
       count(*)                                  AS pieces,
       avg(l.n_tokens)                           AS mean_length,
       median(l.n_tokens)                        AS median_length,
       quantile_cont(l.n_tokens, 0.95)           AS p95_length,
       any_value(e.vocab_size)                   AS vocab_size,
       sum(l.n_tokens) / nullif(sum(r.n_tokens), 0) AS length_vs_remi,
       any_value(e.vocab_size) / nullif(any_value(r.vocab_size), 0) AS vocab_vs_remi
FROM lens l
JOIN common c USING (piece_id)
JOIN core.encodings e USING (encoding, config_hash)
LEFT JOIN remi r USING (piece_id)
GROUP BY l.encoding, l.config_hash;

-- Audio (musicdata.audio): recordings, their transcriptions, and audio files in `sources`.
CREATE OR REPLACE VIEW main.recordings AS SELECT * FROM core.recordings;

CREATE OR REPLACE VIEW main.transcriptions AS
SELECT t.recording_sha256, r.recording_id, t.status, t.piece_id, r.split, t.n_notes, t.audio_s,
       t.n_chunks, t.seconds, t.model_id, t.params_hash, t.params_json, t.run_id, t.created_at
FROM core.transcriptions t LEFT JOIN core.recordings r ON r.sha256 = t.recording_sha256;

-- Inputs of every kind: a MIDI file is ok with its piece, an audio file with its recording (and
-- piece_id is then its transcription, if any). Transcribed MIDI files are outputs, not sources.
CREATE OR REPLACE VIEW main.sources AS
SELECT f.path, f.sha256, f.size_bytes, f.kind, f.archive,
       f.exact_duplicate_of,
       CASE WHEN p.piece_id IS NOT NULL OR r.recording_id IS NOT NULL THEN 'ok'
            ELSE 'quarantined' END AS status,
       coalesce(p.piece_id, (SELECT min(t.piece_id) FROM core.transcriptions t
                             WHERE t.recording_sha256 = f.sha256 AND t.status = 'ok')) AS piece_id,
       f.run_id, f.first_seen_at, r.recording_id
FROM core.files f
LEFT JOIN core.pieces p ON p.sha256 = f.sha256 AND f.kind <> 'audio'
LEFT JOIN core.recordings r ON r.sha256 = f.sha256 AND f.kind = 'audio'
WHERE f.kind <> 'transcription'
UNION ALL
-- Inputs refused before their bytes were stored (missing, unsupported, too large, unsafe archive
-- members, unreadable archives): no core.files row, but every input has a verdict here.
SELECT q.path, any_value(q.sha256), NULL::BIGINT, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR,
       'quarantined', NULL::VARCHAR, arg_max(q.run_id, q.created_at), min(q.created_at),
       NULL::VARCHAR
FROM core.quarantine q
WHERE q.stage IN ('extract', 'ingest', 'ingest:audio')
  AND NOT EXISTS (SELECT 1 FROM core.files f WHERE f.path = q.path)
GROUP BY q.path;

-- Training curves and generated samples (migration 0006).
CREATE OR REPLACE VIEW main.train_metrics AS SELECT * FROM core.train_metrics;
CREATE OR REPLACE VIEW main.generations AS SELECT * FROM core.generations;

-- Token ids to names (encoding, config_hash, field, id, token): join on token_frequencies with
-- field_index and token = id, or on the ids unnested from the shards.
CREATE OR REPLACE VIEW main.vocab AS
SELECT encoding, config_hash, field_index, field, id, token FROM core.vocab;
