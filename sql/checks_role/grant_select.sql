-- SELECT on one of the project's tables (or a run's staging table), nothing else.
GRANT SELECT ON {schema}.{table} TO {role}
