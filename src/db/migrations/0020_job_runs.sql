-- The job history grows by a row per job run. The admin overview counts the failed runs of
-- the last day through the failures alone (rare), and the daily log purge deletes the runs
-- past their period through their start time, neither by reading every run.
CREATE INDEX job_runs_failed ON job_runs(started_at) WHERE ok = 0;
CREATE INDEX job_runs_started ON job_runs(started_at);
