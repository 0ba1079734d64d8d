-- The names of the dashboard athlete's gear (strava_gear, from the gear endpoint): the nickname
-- the athlete gave it, else its name, else brand and model.
SELECT
    id,
    COALESCE(NULLIF(nickname, ''), NULLIF(name, ''), NULLIF(TRIM(COALESCE(brand_name, '') || ' ' || COALESCE(model_name, '')), '')) AS gear_name,
    retired
FROM strava_gear
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
