-- REPLACE_ATHLETE: the athlete's rows go as a whole (the staged rows are then inserted).
DELETE FROM {target}
WHERE athlete_id = :athlete_id
