-- test_module.lua: the Lua C module `vibra` alone, under the lua5.3 interpreter, against
-- `vibra-lab map` (the reference for where each URL goes):
--
--   lua5.3 examples/haproxy/test/test_module.lua <dir holding vibra.so> <vibra-lab>
--
-- For several (servers, replication, hash) and down sets, every URL's namespace and subset
-- equal map's, d:pick with equal loads is the subset's first server, and with that server
-- loaded the second (R > 1). Refusals come back as nil and a message, never as a Lua error.
-- Prints ok/FAIL per check and exits 1 on any failure.

local module_dir, vibra_lab = arg[1], arg[2]
if not module_dir or not vibra_lab then
    io.stderr:write("usage: lua5.3 test_module.lua <dir holding vibra.so> <vibra-lab>\n")
    os.exit(2)
end
package.cpath = module_dir .. "/?.so;" .. package.cpath
local vibra = require("vibra")

local passed, failed = 0, 0
local function check(ok, what, detail)
    if ok then
        passed = passed + 1
        print("ok - " .. what)
    else
        failed = failed + 1
        print("FAIL - " .. what .. (detail and (": " .. detail) or ""))
    end
end

local urls = { "/", "/index.html", "/?lang=en", "/a%20b", "http://example.com/x.gif?y",
    "/x//y", "/./z" }
for i = 0, 199 do
    urls[#urls + 1] = "/english/images/team_" .. i .. ".gif"
    if i % 4 == 0 then
        urls[#urls + 1] = "/french/news/" .. i .. ".html?from=" .. i
    end
end
local list = os.tmpname()
do
    local f = assert(io.open(list, "w"))
    for _, u in ipairs(urls) do f:write(u, "\n") end
    f:close()
end

-- map's lines: { ns = n, subset = { s1, s2, ... } } per URL
local function map(servers, replication, hash, down)
    local cmd = string.format("%q map --servers %d --replication %d --hash %s%s < %q",
        vibra_lab, servers, replication, hash, down and (" --down " .. down) or "", list)
    local p = assert(io.popen(cmd))
    local out = {}
    for line in p:lines() do
        local ns, subset = line:match("^(%d+) ([%d,]+)$")
        local entry = { ns = tonumber(ns), subset = {} }
        for s in subset:gmatch("%d+") do entry.subset[#entry.subset + 1] = tonumber(s) end
        out[#out + 1] = entry
    end
    p:close()
    assert(#out == #urls, cmd .. " printed " .. #out .. " lines for " .. #urls .. " URLs")
    return out
end

local function zeros(n)
    local t = {}
    for i = 1, n do t[i] = 0 end
    return t
end

local cases = { { 4, 2, "charsum", nil }, { 4, 3, "md5", "2" }, { 7, 1, "sha1", "0,3" },
    { 10, 4, "fast", "1,2,3" }, { 5, 5, "fast", "4" } }
for _, case in ipairs(cases) do
    local n, r, hash, down = case[1], case[2], case[3], case[4]
    local name = string.format("N=%d R=%d %s down=%s", n, r, hash, down or "none")
    local d = vibra.new(n, r, hash)
    local up = {}
    for i = 1, n do up[i] = true end
    for s in (down or ""):gmatch("%d+") do up[tonumber(s) + 1] = false end
    local all_up = map(n, r, hash, nil)
    local ref = map(n, r, hash, down)
    local wrong = {}
    for i, url in ipairs(urls) do
        local ns = d:namespace(url)
        local subset = d:subset(ns)
        if ns ~= all_up[i].ns or table.concat(subset, ",") ~= table.concat(all_up[i].subset, ",") then
            wrong[#wrong + 1] = url .. ": namespace/subset differ from map"
        end
        local loads = zeros(n)
        local first = d:pick(url, loads, up)
        if first ~= ref[i].subset[1] then
            wrong[#wrong + 1] = string.format("%s -> %s, map says %s", url, tostring(first),
                table.concat(ref[i].subset, ","))
        end
        if #ref[i].subset > 1 then
            loads[first + 1] = 1
            local second = d:pick(url, loads, up)
            if second ~= ref[i].subset[2] then
                wrong[#wrong + 1] = string.format("%s with its first member loaded -> %s, map says %s",
                    url, tostring(second), table.concat(ref[i].subset, ","))
            end
        end
    end
    check(#wrong == 0, name .. ": " .. #urls .. " URLs pick as `vibra-lab map` says (equal loads, " ..
        "then the first member loaded)", table.concat(wrong, "; ", 1, math.min(#wrong, 5)))
end

local d = vibra.new(4, 2, "charsum")
local s, err = d:pick("/a", zeros(4), { false, false, false, false })
check(s == nil and tostring(err):find("VIBRA_NO_SERVER_AVAILABLE", 1, true) ~= nil,
    "every server down: nil and libvibra's message (" .. tostring(err) .. ")")
s, err = d:pick("/a", zeros(3), { true, true, true, true })
check(s == nil and err ~= nil, "a loads table shorter than N: nil and a message (" .. tostring(err) .. ")")
s, err = d:pick("/a", { 0, -1, 0, 0 }, { true, true, true, true })
check(s == nil and err ~= nil, "a negative load: nil and a message")
check(not pcall(vibra.new, 4, 5, "charsum"), "vibra.new refuses replication above the server count")
check(not pcall(vibra.new, 4, 2, "crc32"), "vibra.new refuses an unknown hash")
check(not pcall(vibra.new, 0, 1, "fast"), "vibra.new refuses zero servers")
check(type(vibra.version()) == "string", "vibra.version() is libvibra's version (" .. vibra.version() .. ")")

os.remove(list)
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1, true)  -- true: close the state, so every __gc runs
