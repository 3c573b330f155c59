"""The worker process (`python -m service.worker`, `make worker`): rq's worker made to lose
no job (`main`), the job functions queue entries name (`jobs`), a running job's recorder
and lease, and the reaper that hands back the jobs of workers that are gone."""
