"""The soak harness: ``make soak`` (10 minutes) and ``make soak-quick`` (60 seconds).

Mixed traffic through a real nginx to two gunicorn instances on a throwaway PostgreSQL and
Redis, a Celery worker and beat delivering webhooks to a local receiver, faults injected while
the load runs, and a report in ``bench/results/soak-latest.md``. Run it with
``.venv/bin/python -m tests.soak --help``.
"""
