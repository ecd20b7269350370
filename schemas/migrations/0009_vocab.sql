-- Token strings by id, per encoding config and field (issue 19), so an analyst can join the ids
-- in the shards (and in token_frequencies) to names: the `vocab` view. Filled by the tokenize
-- stage when it registers a config, and by `musicdata catalog views` for older configs.
CREATE TABLE core.vocab (
    encoding    VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    field_index INTEGER NOT NULL,  -- 0 for a flat encoding; 1.. for compound sub-tokens
    field       VARCHAR NOT NULL,  -- 'token' (flat) or the sub-token name, e.g. 'pitch'
    id          INTEGER NOT NULL,
    token       VARCHAR NOT NULL,  -- e.g. 'Pitch_60'; a learned token joins its base tokens
    PRIMARY KEY (encoding, config_hash, field_index, id)
);
