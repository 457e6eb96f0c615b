-- vibra_route.lua: HAProxy Lua glue that routes each request to the server libvibra picks
-- (SPDX-License-Identifier: MIT OR Apache-2.0). See README.md in this directory.
--
-- It registers the sample fetch `lua.vibra(R, HASH)`. Used in a backend,
--
--     http-request set-var(txn.vibra) lua.vibra(2,charsum)
--     use-server s0 if { var(txn.vibra) -m str s0 }
--     ...
--
-- it returns the name of the server that `vibra_dispatcher_pick_with` chooses for the request
-- target (`url`), from HAProxy's own view of the backend's servers, read per request: the
-- sample fetch `srv_conn` (the server's current sessions, `scur` in the stats) as the load, and
-- `srv_is_up` (not DOWN, not in maintenance) and not Server:is_draining() as the availability.
-- (Server:get_stats() gives the same two values but builds a table of about 80 fields per
-- server per call, clearly slower per request: it is read once, for the ids.) It
-- returns nothing, after a log line, when anything fails (no such backend, bad arguments, a
-- libvibra error, a Lua error): the variable stays unset, no `use-server` rule matches, and
-- HAProxy balances the request with the backend's own `balance` algorithm.
--
-- Servers are numbered 0..N-1 in the order of their ids (the `sid` of get_stats()), which is
-- the order of the `server` lines unless `id` is set on them: the numbering of `vibra-lab map`.
--
-- Load it with `lua-load-per-thread` (one Lua state, so one set of dispatchers, per thread; no
-- lock) or `lua-load` (one state shared under HAProxy's Lua lock). Nothing here is shared
-- between states, and nothing is written per request but this state's scratch tables.

local vibra = require("vibra")

-- Per Lua state: "backend\0R\0hash" -> route, or false when building it failed. Then every
-- request of that backend falls back; the first and every FAILED_LOG_EVERY-th say why in the
-- log (one line per request would flood it).
local routes = {}
local failures = {}
local FAILED_LOG_EVERY = 1000

local function log_fallback(what)
    core.log(core.warning, "vibra: " .. what .. "; HAProxy's own balancing takes the request")
end

-- HAProxy 2.6 gives booleans from Lua as 0 or 1 (srv_is_up, is_draining), and 0 is true in Lua.
local function yes(value)
    return value == true or value == 1
end

local function build(backend, replication, hash)
    local be = core.backends[backend]
    if be == nil then
        error("no backend named " .. backend)
    end
    local list = {}
    for name, server in pairs(be.servers) do
        list[#list + 1] = { name = name, server = server, id = tonumber(server:get_stats().sid) }
    end
    table.sort(list, function(a, b) return a.id < b.id end)
    if #list == 0 then
        error("backend " .. backend .. " has no server")
    end
    local route = { servers = {}, names = {}, loads = {}, up = {} }
    for i, entry in ipairs(list) do
        route.servers[i] = entry.server
        route.names[i] = entry.name
        route.loads[i] = 0
        route.up[i] = false
    end
    route.dispatcher = vibra.new(#list, replication, hash)
    route.n = #list
    route.r = route.dispatcher:replication()
    for i = 1, route.n do
        route.up[i] = true
    end
    return route
end

local function route_for(txn, replication, hash)
    local backend = txn.f:be_name()
    local key = backend .. "\0" .. tostring(replication) .. "\0" .. tostring(hash)
    local route = routes[key]
    if route == nil then
        local ok, result = pcall(build, backend, tonumber(replication), hash)
        if ok then
            route = result
        else
            route = false
            failures[key] = { message = tostring(result), count = 0 }
        end
        routes[key] = route
    end
    if route == false then
        local failure = failures[key]
        if failure.count % FAILED_LOG_EVERY == 0 then
            log_fallback("backend " .. backend .. ": " .. failure.message ..
                " (" .. failure.count .. " requests before this one)")
        end
        failure.count = failure.count + 1
        return nil
    end
    return route
end

-- Reads server i's load and availability into the route's scratch tables; returns whether
-- it is up.
local function read_server(route, f, i)
    local name = route.names[i]
    route.loads[i] = f:srv_conn(name)
    local up = yes(f:srv_is_up(name)) and not yes(route.servers[i]:is_draining())
    route.up[i] = up
    return up
end

local function pick(txn, replication, hash)
    local route = route_for(txn, replication or "1", hash or "fast")
    if route == nil then
        return nil
    end
    local f, d, n = txn.f, route.dispatcher, route.n
    local target = txn.sf:url()
    -- Common case first: when the R servers ns, ns+1, ... (cyclic) are all up they are exactly
    -- the target's subset, whatever the other servers' state (SPEC 3), so only they are read.
    -- The other entries keep whatever an earlier request left there; pick_with then chooses
    -- among these R alone.
    local ns, err = d:namespace(target)
    if ns == nil then
        log_fallback("no pick for " .. string.format("%q", target) .. ": " .. tostring(err))
        return nil
    end
    local all_up = true
    for j = 0, route.r - 1 do
        if not read_server(route, f, (ns + j) % n + 1) then
            all_up = false
            break
        end
    end
    if not all_up then
        -- a member is down: the subset reaches further, so read every server
        for i = 1, n do
            read_server(route, f, i)
        end
    end
    local index
    index, err = d:pick(target, route.loads, route.up)
    if index == nil then
        log_fallback("no pick for " .. string.format("%q", target) .. ": " .. tostring(err))
        return nil
    end
    return route.names[index + 1]
end

core.register_fetches("vibra", function(txn, replication, hash)
    local ok, result = pcall(pick, txn, replication, hash)
    if not ok then
        log_fallback("Lua error: " .. tostring(result))
        return nil
    end
    return result
end)
