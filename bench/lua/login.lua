-- POST /api/v1/auth/login with the benchmark user's credentials (argon2id verify each time).
local common = require("common")
setup = common.setup
done = common.done

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"email":"%s","password":"%s"}',
  os.getenv("BENCH_EMAIL"), os.getenv("BENCH_PASSWORD"))
