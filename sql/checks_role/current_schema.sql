-- The schema the connection's unqualified names resolve to.
SELECT current_schema()
