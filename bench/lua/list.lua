-- GET /api/v1/tasks?page_size=20 as the user who owns 10,000 tasks (also the Flask ceiling).
local common = require("common")
common.bearer("BENCH_TOKEN")
setup = common.setup
done = common.done
