-- Note quality flags per piece (issue 12): what `[ingest] normalize = "trim-overlaps"` would change
-- (musicdata.encodings.normalize). NULL: ingested before these flags existed (or transcribed).
ALTER TABLE core.pieces ADD COLUMN duplicate_notes BIGINT;      -- same track, pitch and onset
ALTER TABLE core.pieces ADD COLUMN overlapping_notes BIGINT;    -- re-struck before their note-off
ALTER TABLE core.pieces ADD COLUMN long_notes BIGINT;           -- > max_duration_quarters after trim
ALTER TABLE core.pieces ADD COLUMN longest_note_quarters DOUBLE; -- as written in the file
