-- Audio: recordings (decoded and validated in isolation) and their basic-pitch transcriptions.
-- A recording's bytes are in core.files (kind 'audio'); a transcription is a real MIDI piece in
-- core.pieces (its bytes in objects/, a core.files row of kind 'transcription') with the
-- recording's split, linked by the lineage edge audio:<sha256> -> piece:<piece_id>.
CREATE TABLE core.recordings (
    recording_id  VARCHAR PRIMARY KEY,       -- 'r' + first 20 hex of the file sha256
    sha256        VARCHAR NOT NULL UNIQUE,
    content_hash  VARCHAR NOT NULL,          -- hash of the decoded samples (16-bit), rate, channels
    split         VARCHAR NOT NULL,          -- train | validation | test, from content_hash
    near_duplicate_of VARCHAR,               -- canonical recording with the same decoded samples
    blob_path     VARCHAR NOT NULL,          -- relative to the workspace
    format        VARCHAR NOT NULL,          -- libsndfile's container name: WAV, FLAC, OGG, MP3, ...
    subtype       VARCHAR,                   -- sample encoding: PCM_16, FLOAT, VORBIS, ...
    duration_s    DOUBLE NOT NULL,
    sample_rate   INTEGER NOT NULL,
    channels      INTEGER NOT NULL,
    frames        BIGINT NOT NULL,           -- decoded sample frames (not the header's claim)
    rms_dbfs      DOUBLE,                    -- loudness: RMS over all samples, dB full scale; NULL if digital silence
    peak_dbfs     DOUBLE,                    -- NULL if digital silence
    is_silent     BOOLEAN NOT NULL,          -- rms below audio.silence_dbfs
    ingest_config_hash VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE core.transcriptions (
    recording_sha256 VARCHAR NOT NULL,
    params_hash   VARCHAR NOT NULL,          -- model id + onset/frame thresholds, note length, range...
    status        VARCHAR NOT NULL,          -- ok | no_notes | quarantined
    piece_id      VARCHAR,                   -- the MIDI piece (status ok)
    model_id      VARCHAR NOT NULL,          -- e.g. basic-pitch-0.4.0/icassp_2022
    params_json   VARCHAR NOT NULL,
    n_notes       BIGINT NOT NULL,
    n_chunks      INTEGER NOT NULL,
    audio_s       DOUBLE NOT NULL,
    seconds       DOUBLE NOT NULL,           -- wall time of the transcription in its worker
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (recording_sha256, params_hash)
);
