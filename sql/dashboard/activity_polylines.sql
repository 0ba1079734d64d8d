-- The summary polylines of the dashboard's athlete's live activities, newest first: the heatmap's routes.
SELECT
    map_summary_polyline
FROM strava_activity_data
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
  AND deleted_at IS NULL
  AND map_summary_polyline IS NOT NULL
  AND map_summary_polyline <> ''
ORDER BY start_date_local DESC
