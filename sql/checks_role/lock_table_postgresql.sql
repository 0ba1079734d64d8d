-- After the grant lock, before reading the table's privilege again: PostgreSQL applies other
-- sessions' committed catalog changes (the ACL the session we waited for granted) when it takes
-- a lock on a relation; without it this transaction's cached ACL is the one it read before waiting.
-- ACCESS SHARE conflicts only with DROP and ALTER: a model being rebuilt is waited for.
LOCK TABLE {schema}.{table} IN ACCESS SHARE MODE
