-- Columns of a table in the current schema stored in single precision (4 bytes): DuckDB's FLOAT
-- (what sa.Float() compiled to before the columns were declared DOUBLE), PostgreSQL's real.
SELECT column_name
FROM information_schema.columns
WHERE table_schema = current_schema()
  AND table_name = :table
  AND UPPER(data_type) IN ('FLOAT', 'REAL')
ORDER BY ordinal_position
