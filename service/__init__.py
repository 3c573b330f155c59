"""gradserve's service, one subpackage per process: `api` (the HTTP API under gunicorn),
`worker` (rq workers), `stack` (`make run`), all over `store` (everything in Redis); and
what they share: `settings` and `config`, `errors` and `problems`, `strictjson`, `retry`."""
