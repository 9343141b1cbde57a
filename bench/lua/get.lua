-- GET /api/v1/tasks/{id}, a random one of the user's tasks each time.
local common = require("common")
common.bearer("BENCH_TOKEN")
setup = common.setup
init = common.seed
done = common.done

request = function()
  return wrk.format("GET", "/api/v1/tasks/" .. common.random_id())
end
