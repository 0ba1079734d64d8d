-- When the athlete's stats were last read (a snapshot a UTC day is enough between runs).
SELECT MAX(observed_at)
FROM {stats}
WHERE athlete_id = :athlete_id
