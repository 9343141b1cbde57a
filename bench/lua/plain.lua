-- GET of the URL given to wrk, without a token (health/live, the bare WSGI ceiling).
local common = require("common")
setup = common.setup
done = common.done
