-- POST /api/v1/tasks: each request creates a task and its task.created outbox row.
local common = require("common")
common.bearer("BENCH_WRITER_TOKEN")
setup = common.setup
done = common.done

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"Benchmark task","description":"Created by wrk",' ..
  '"priority":"high","tags":["bench","wrk"],"due_at":"2030-01-31T17:00:00+00:00"}'
