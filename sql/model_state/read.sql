-- Every state row: the inputs version, and what the last complete build of the models saw.
SELECT kind, version, fingerprint, model_rows FROM {state}
