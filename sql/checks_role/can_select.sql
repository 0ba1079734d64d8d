-- Whether the checks role may already read the table (so a run grants only what is missing).
SELECT COUNT(*) FROM (SELECT 1 AS x) t WHERE has_table_privilege(:role, :table, 'SELECT')
