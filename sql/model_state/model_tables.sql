-- The tables of the session's current schema among the given names (the models that exist).
SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema()
  AND table_name IN :names
