-- First half of the merge: production rows that this run re-fetched make way for the new values.
DELETE FROM {target}
WHERE id IN (SELECT id FROM {staging})
