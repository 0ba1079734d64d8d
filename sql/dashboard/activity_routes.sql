-- The summary polylines of the dashboard athlete's live activities with their ids, newest first:
-- the heatmap's routes where an activity has no track in the streams.
SELECT
    id,
    map_summary_polyline
FROM strava_activity_data
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
  AND deleted_at IS NULL
  AND map_summary_polyline IS NOT NULL
  AND map_summary_polyline <> ''
ORDER BY start_date_local DESC
