-- Activities the extract wrote to the staging file (NULL when the caller did not say).
SELECT CAST(:expected_rows AS BIGINT) AS extracted_rows
