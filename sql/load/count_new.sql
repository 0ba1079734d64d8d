-- Staged activities that the athlete's production rows have never held.
SELECT COUNT(*)
FROM {staging} AS s
LEFT JOIN {target} AS t ON t.id = s.id AND t.athlete_id = :athlete_id
WHERE t.id IS NULL
