-- Strict round-trip fidelity (issue 12): onset error in ms over the notes found at their onset,
-- and why the other notes were lost (reason -> notes, JSON), per piece and encoding config.
ALTER TABLE core.fidelity ADD COLUMN onset_matched BIGINT DEFAULT 0;
ALTER TABLE core.fidelity ADD COLUMN onset_err_ms_mean DOUBLE;
ALTER TABLE core.fidelity ADD COLUMN onset_err_ms_p95 DOUBLE;
ALTER TABLE core.fidelity ADD COLUMN onset_err_ms_max DOUBLE;
ALTER TABLE core.fidelity ADD COLUMN lost VARCHAR;             -- JSON {reason: notes}
