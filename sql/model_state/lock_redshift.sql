-- One model build at a time, until this transaction ends (Redshift has no advisory locks: the
-- models' state table is locked instead; a merge's bump of it waits for the model's commit).
LOCK {state}
