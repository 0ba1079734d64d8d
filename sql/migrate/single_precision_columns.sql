-- Columns of a table in the current schema stored in single precision (FLOAT/REAL: 4 bytes),
-- as DuckDB tables created before the columns were declared DOUBLE hold them.
SELECT column_name
FROM information_schema.columns
WHERE table_schema = current_schema()
  AND table_name = :table
  AND UPPER(data_type) IN ('FLOAT', 'REAL', 'FLOAT4')
ORDER BY ordinal_position
