-- Widen one single-precision column to double precision, in place (values kept as they are).
ALTER TABLE {table} ALTER COLUMN {column} SET DATA TYPE DOUBLE PRECISION
