-- The start of every activity the athlete holds in the warehouse (a reaction tells which events
-- the incremental read covers, and which activities it must read alone).
SELECT id, start_date
FROM {target}
WHERE athlete_id = :athlete_id
