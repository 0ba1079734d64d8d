-- Rows in an entity's staging table (the gate has checked they are all the run's athlete's).
SELECT COUNT(*)
FROM {staging}
WHERE athlete_id = :athlete_id
