-- Every row of one model table (or the validation results table), for the dashboard.
SELECT * FROM {model}
