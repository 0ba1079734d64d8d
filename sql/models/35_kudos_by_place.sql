-- Kudos per athlete by place: the city (with its country) where Strava names one, else the country,
-- else a coarse 0.5-degree grid cell of the start point (its south-west corner).
-- Activities with none of these (indoor, manual) are left out. Deleted activities excluded.
WITH located AS (
    SELECT
        athlete_id,
        kudos_count,
        start_lat,
        start_lng,
        CASE
            WHEN location_city IS NOT NULL AND location_city <> '' THEN 'city'
            WHEN location_country IS NOT NULL AND location_country <> '' THEN 'country'
            WHEN start_lat IS NOT NULL AND start_lng IS NOT NULL THEN 'grid'
        END AS place_type,
        CASE WHEN location_city <> '' THEN location_city END AS city,
        CASE WHEN location_country <> '' THEN location_country END AS country,
        CAST(FLOOR(start_lat * 2) / 2.0 AS NUMERIC(6, 1)) AS cell_lat,
        CAST(FLOOR(start_lng * 2) / 2.0 AS NUMERIC(6, 1)) AS cell_lng
    FROM strava_activity_data
    WHERE deleted_at IS NULL
),
placed AS (
    SELECT
        athlete_id,
        place_type,
        city,
        CASE WHEN place_type IN ('city', 'country') THEN country END AS country,
        CASE WHEN place_type = 'grid' THEN cell_lat END AS grid_lat,
        CASE WHEN place_type = 'grid' THEN cell_lng END AS grid_lng,
        kudos_count,
        start_lat,
        start_lng
    FROM located
    WHERE place_type IS NOT NULL
)
SELECT
    athlete_id,
    place_type,
    CASE place_type
        WHEN 'city' THEN city || COALESCE(', ' || country, '')
        WHEN 'country' THEN country
        ELSE 'grid ' || CAST(grid_lat AS VARCHAR(16)) || ', ' || CAST(grid_lng AS VARCHAR(16))
    END AS place,
    city,
    country,
    grid_lat,
    grid_lng,
    COUNT(*) AS activity_count,
    COALESCE(SUM(kudos_count), 0) AS total_kudos,
    ROUND(CAST(AVG(CAST(kudos_count AS DOUBLE PRECISION)) AS NUMERIC(18, 4)), 2) AS avg_kudos,
    ROUND(CAST(AVG(start_lat) AS NUMERIC(18, 6)), 4) AS avg_start_lat,
    ROUND(CAST(AVG(start_lng) AS NUMERIC(18, 6)), 4) AS avg_start_lng
FROM placed
GROUP BY athlete_id, place_type, city, country, grid_lat, grid_lng
ORDER BY athlete_id, activity_count DESC, place
