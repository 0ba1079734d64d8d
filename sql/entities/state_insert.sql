-- Enrichment state upsert, second half: the activity's row as the batch left it (executed per row).
INSERT INTO {state} (
    athlete_id, activity_id, detail_at, detail_due, streams_at, streams_outcome, streams_samples, attempts, last_error
)
VALUES (
    :athlete_id, :activity_id, :detail_at, :detail_due, :streams_at, :streams_outcome,
    :streams_samples, :attempts, :last_error
)
