-- create.lua - wrk: POST the resource in $EHR_BENCH_BODY (a file) to the
-- URL given on the command line, e.g. http://127.0.0.1:8080/fhir/Patient.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local path = os.getenv("EHR_BENCH_BODY") or (dir .. "../patient.json")
local f = assert(io.open(path, "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
