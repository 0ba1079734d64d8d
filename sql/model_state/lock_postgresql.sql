-- One model build at a time per database, until this transaction ends: two runs rebuilding a
-- model at once would both DROP it and both CREATE it (the second fails: it already exists).
SELECT pg_advisory_xact_lock(hashtext('strava_elt.models'))
