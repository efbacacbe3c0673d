DROP FUNCTION files_admit_batch(uuid[], uuid[], uuid[], bigint[], date[], bigint[], bigint[], bigint[], bigint[]);
