-- PATCH /api/v1/tasks/{id}: the user's tasks in turn (never one task twice at once) get a new
-- title: a real change, so a new version and a task.updated outbox row.
local common = require("common")
common.bearer("BENCH_TOKEN")
setup = common.setup
init = common.seed
done = common.done

wrk.headers["Content-Type"] = "application/json"

request = function()
  local body = string.format('{"title":"Renamed %d"}', math.random(1, 1000000000))
  -- nil headers: wrk.headers (the token and the content type) are sent
  return wrk.format("PATCH", "/api/v1/tasks/" .. common.next_id(), nil, body)
end
