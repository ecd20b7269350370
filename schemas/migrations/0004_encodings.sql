-- Every symbolic encoding: compound sub-token layout and round-trip fidelity per piece.
ALTER TABLE core.encodings ADD COLUMN sub_tokens VARCHAR[];        -- compound field names, in order
ALTER TABLE core.encodings ADD COLUMN sub_vocab_sizes INTEGER[];   -- vocabulary size per field
ALTER TABLE core.encodings ADD COLUMN lossless BOOLEAN;            -- lossless in principle
ALTER TABLE core.encodings ADD COLUMN paper VARCHAR;               -- where the defaults come from

-- Share of each piece's notes that survive encode -> decode within the encoding's resolution.
CREATE TABLE core.fidelity (
    encoding      VARCHAR NOT NULL,
    config_hash   VARCHAR NOT NULL,
    piece_id      VARCHAR NOT NULL,
    notes         BIGINT NOT NULL,           -- reference notes in the source piece
    recovered     BIGINT NOT NULL,           -- found again (pitch, onset, duration within resolution)
    decoded       BIGINT NOT NULL,           -- notes in the decoded piece
    error         VARCHAR,                   -- decode failure, if any
    run_id        VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (encoding, config_hash, piece_id)
);
