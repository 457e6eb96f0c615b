-- test_module.lua: the Lua C module `vibra` alone, under the lua5.3 interpreter, against
-- `vibra-lab map` (the reference for where each URL goes):
--
--   lua5.3 examples/haproxy/test/test_module.lua <dir holding vibra.so> <vibra-lab>
--
-- For several (servers, replication, hash) and down sets, every URL's namespace and subset
-- equal map's, d:pick with equal loads is the subset's first server, and with that server
-- loaded the second (R > 1); the same through HAProxy's state strings (d:pick_state,
-- d:set_down, d:repick_state), and vibra.converter answers in C exactly the common case.
-- Refusals come back as nil and a message, never as a Lua error.
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

    -- The same through HAProxy's input strings (`<target> <backend><entries>`): the full state
    -- (srv_is_up, srv_conn), the short one (every server usable) and the bare backend name.
    local function full_state(loads)
        local parts = { "web" }
        for k = 1, n do
            parts[#parts + 1] = string.format("s%d=%d,%d", k - 1, up[k] and 1 or 0, loads[k])
        end
        return table.concat(parts, "/")
    end
    local names = {}
    for k = 1, n do names[k] = "s" .. (k - 1) end
    wrong = {}
    for i, url in ipairs(urls) do
        local members_up = true
        for j = 0, r - 1 do members_up = members_up and up[(all_up[i].ns + j) % n + 1] end
        local loads = zeros(n)
        local first, ns, status = d:pick_state(url .. " " .. full_state(loads))
        if first ~= ref[i].subset[1] or ns ~= all_up[i].ns or status ~= (members_up and 1 or 2) then
            wrong[#wrong + 1] = string.format("%s: full state -> %s ns %s status %s, map says %s ns %d",
                url, tostring(first), tostring(ns), tostring(status), table.concat(ref[i].subset, ","),
                all_up[i].ns)
        elseif #ref[i].subset > 1 then
            loads[first + 1] = 1
            local second = d:pick_state(url .. " " .. full_state(loads))
            if second ~= ref[i].subset[2] then
                wrong[#wrong + 1] = string.format("%s: full state, first member loaded -> %s, map says %s",
                    url, tostring(second), table.concat(ref[i].subset, ","))
            end
        end
        -- every server in the state, then set_down for the down ones and a repick
        local all = {}
        for k = 1, n do all[k] = string.format("s%d=1,0", k - 1) end
        local input = url .. " web/" .. table.concat(all, "/")
        d:pick_state(input)
        for k = 1, n do
            if not up[k] then d:set_down(k - 1) end
        end
        local again = d:repick_state(input)
        if again ~= ref[i].subset[1] then
            wrong[#wrong + 1] = string.format("%s: set_down and repick -> %s, map says %s", url,
                tostring(again), table.concat(ref[i].subset, ","))
        end
        if down == nil then
            local short = d:pick_state(url .. " web/" .. table.concat(names, "=0/") .. "=0")
            local short_status = select(3, d:pick_state(url .. " web/" .. table.concat(names, "/")))
            local bare, _, bare_status = d:pick_state(url .. " web")
            if short ~= all_up[i].subset[1] or bare ~= all_up[i].subset[1] or short_status ~= 0
                or bare_status ~= 0 then
                wrong[#wrong + 1] = string.format("%s: usable/bare state -> %s/%s (status %s), map says %s",
                    url, tostring(short), tostring(bare), tostring(bare_status),
                    table.concat(all_up[i].subset, ","))
            end
        end
    end
    check(#wrong == 0, name .. ": the same picks from HAProxy's state strings (pick_state, set_down " ..
        "and repick_state; usable and bare states with every server up)",
        table.concat(wrong, "; ", 1, math.min(#wrong, 5)))
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
-- HAProxy's input strings that are not what the converter writes: nil and a message
local bad = {
    { "/a", "no space between the target and the state" },
    { "/a web/s0/s1/s2", "fewer servers" },
    { "/a web/s0/s1/s2/s3/s4", "more servers" },
    { "/a web/s0=2,0/s1/s2/s3", "<up> 2" },
    { "/a web/s0=1,/s1/s2/s3", "no <conn> after <up>" },
    { "/a web/s0=x/s1/s2/s3", "a <conn> that is not a number" },
    { "/a web/s0=/s1/s2/s3", "an empty <conn>" },
    { "/a web/s0=1,2,3/s1/s2/s3", "two commas" },
    { "/a web/s0=0,0/s1=0,0/s2=0,0/s3=0,0", "every server down" },
}
for _, case in ipairs(bad) do
    s, err = d:pick_state(case[1])
    check(s == nil and type(err) == "string", "pick_state refuses a state with " .. case[2] ..
        ": nil and a message (" .. tostring(err) .. ")")
end
check(vibra.backend("/a b web/s0=1,0") == "web" and vibra.backend("/a web") == "web",
    "vibra.backend reads the name after the last space")
check(vibra.backend("/a") == nil and vibra.backend("/a /s0") == nil,
    "vibra.backend: nil without a space or with an empty name")
check(not pcall(d.set_down, d, 4), "set_down refuses a server past N")
local big = d:pick_state("/a web/s0=1,99999999999999999999/s1=1,0/s2=1,0/s3=1,0")
check(big ~= nil, "a connection count past 2^32 saturates (picked " .. tostring(big) .. ")")

-- vibra.converter: the common case in C, everything else through the Lua function given
do
    local dc = vibra.new(4, 2, "fast")
    local route = { dc, { "s0", "s1", "s2", "s3" } }
    local routes = { web = { ["2"] = { fast = route } } }
    local calls = {}
    local convert = vibra.converter(routes, function(input, replication, hash)
        calls[#calls + 1] = input
        return "lua"
    end)
    local usable = "/img/a.gif web/s0=0/s1=0/s2=0/s3=0"
    local want = "s" .. dc:pick_state(usable)
    check(convert(usable, "2", "fast") == "lua" and #calls == 1,
        "converter: entries of a route not yet checked (route[3] unset) go to the Lua")
    route[3] = true
    calls = {}
    check(convert(usable, "2", "fast") == want and #calls == 0,
        "converter: a checked route and a usable state are answered in C (" .. want .. ")")
    check(convert("/img/a.gif web", "2", "fast") == want and #calls == 0,
        "converter: the bare backend name is answered in C")
    local others = { { "/img/a.gif web/s0=1,0/s1=1,0/s2=1,0/s3=1,0", "2", "fast" },
        { "/img/a.gif other", "2", "fast" }, { "/img/a.gif web", "3", "fast" },
        { "/img/a.gif", "2", "fast" }, { "/img/a.gif web/s0/s1", "2", "fast" } }
    for _, args in ipairs(others) do
        calls = {}
        check(convert(args[1], args[2], args[3]) == "lua" and #calls == 1,
            "converter: " .. string.format("%q", args[1]) .. " (R " .. args[2] .. ") goes to the Lua")
    end
end

check(type(vibra.version()) == "string", "vibra.version() is libvibra's version (" .. vibra.version() .. ")")

os.remove(list)
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1, true)  -- true: close the state, so every __gc runs
