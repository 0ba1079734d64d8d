-- A complete build of every model: the inputs version it started from, the models' SQL
-- fingerprint and each model's rows (JSON).
INSERT INTO {state} (kind, version, fingerprint, model_rows, recorded_at)
VALUES ('built', :version, :fingerprint, :model_rows, :recorded_at)
