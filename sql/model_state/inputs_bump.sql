-- Production changed (in the transaction that changed it): the models built before are stale.
UPDATE {state} SET version = version + 1 WHERE kind = 'inputs'
