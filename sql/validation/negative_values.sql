-- Staged rows with a negative distance, time or count.
SELECT
    COUNT(*) AS negative_rows,
    'e.g. id ' || CAST(MIN(id) AS VARCHAR) AS detail
FROM {staging}
WHERE distance < 0
   OR total_elevation_gain < 0
   OR moving_time < 0
   OR elapsed_time < 0
   OR kudos_count < 0
   OR comment_count < 0
   OR achievement_count < 0
   OR athlete_count < 0
   OR photo_count < 0
   OR total_photo_count < 0
   OR pr_count < 0
