"""Starting jobs is limited per user (``RATELIMIT_JOB_CREATE_PER_USER``); reading them is not."""

from __future__ import annotations

from pathlib import Path

from tests.factories import UserFactory, access_token_for
from tests.support.rate_limits import limited_app

JOBS = "/api/v1/jobs"


def test_job_creation_is_limited_per_user_across_addresses(
    database_url: str, instance_path: Path, redis_url: str
) -> None:
    with limited_app(
        database_url, instance_path, redis_url, RATELIMIT_JOB_CREATE_PER_USER="2/minute"
    ) as app:
        client = app.test_client()
        ada, grace = UserFactory(), UserFactory()
        ada_headers = {"Authorization": f"Bearer {access_token_for(ada)}"}
        grace_headers = {"Authorization": f"Bearer {access_token_for(grace)}"}

        def start(headers: dict[str, str], address: str) -> int:
            response = client.post(
                JOBS,
                json={"type": "tasks.export"},
                headers=headers,
                environ_base={"REMOTE_ADDR": address},
            )
            return response.status_code

        ada_starts = [start(ada_headers, f"192.0.2.{n}") for n in range(3)]
        grace_start = start(grace_headers, "192.0.2.0")
        # Only POST is limited: Ada can still follow her jobs.
        listing = client.get(JOBS, headers=ada_headers)

    assert ada_starts == [202, 202, 429]
    assert grace_start == 202
    assert listing.status_code == 200
