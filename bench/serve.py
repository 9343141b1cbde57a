"""The benchmark's service on its own, for profiling by hand (bounded: it stops by itself).

    .venv/bin/python -m bench.serve            # prints the port, the tokens and a wrk line
    py-spy record --pid <worker pid> --duration 20 --format raw -o /tmp/list.txt

Same database seeding, settings and gunicorn as ``make bench``; BENCH_SERVE_SECONDS (default
1200) bounds how long it runs, BENCH_APP picks the WSGI app (default ``wsgi:app``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import LUA_DIR  # noqa: E402
from bench.stack import (  # noqa: E402
    READER_EMAIL,
    WRITER_EMAIL,
    login,
    open_stack,
    seed,
    start_gunicorn,
)


def main() -> None:
    """Start, print how to load it, wait, stop."""
    seconds = float(os.environ.get("BENCH_SERVE_SECONDS", "1200"))
    workers = int(os.environ.get("BENCH_WORKERS", "4"))
    threads = int(os.environ.get("BENCH_THREADS", "4"))
    with (
        tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp,
        open_stack(Path(tmp), workers=workers, threads=threads) as stack,
    ):
        seed(stack)
        api = start_gunicorn(stack, os.environ.get("BENCH_APP", "wsgi:app"), "api")
        try:
            reader, writer = login(api.port, READER_EMAIL), login(api.port, WRITER_EMAIL)
            print(f"logs: {tmp}/api.log; master {api.pid}, workers {api.children()}")
            print(
                f"export BENCH_TOKEN={reader} BENCH_WRITER_TOKEN={writer} "
                f"BENCH_FIRST_ID={stack.first_task_id} BENCH_LAST_ID={stack.last_task_id} "
                f"BENCH_PORT={api.port} BENCH_DATABASE_URL={stack.database_url}"
            )
            print(
                f"cd {LUA_DIR} && wrk -t2 -c32 -d10s -s list.lua "
                f"'http://127.0.0.1:{api.port}/api/v1/tasks?page_size=20'",
                flush=True,
            )
            time.sleep(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            api.stop()


if __name__ == "__main__":
    main()
