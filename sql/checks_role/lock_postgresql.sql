-- One session at a time grants to the checks role, until this transaction ends: two sessions
-- granting SELECT on one table at once fail with "tuple concurrently updated" (both update the
-- table's ACL); the second waits here, then finds the privilege held and grants nothing.
SELECT pg_advisory_xact_lock(hashtext('strava_elt.checks_role'))
