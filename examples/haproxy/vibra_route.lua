-- vibra_route.lua: HAProxy Lua glue that routes each request to the server libvibra picks
-- (SPDX-License-Identifier: MIT OR Apache-2.0). See README.md in this directory.
--
-- It registers the converter `lua.vibra(R, HASH)`. Used in a backend of servers s0..s3,
--
--     http-request set-var-fmt(txn.vibra_state) "%[be_name]/s0=%[srv_is_up(s0)],%[srv_conn(s0)]/s1=..."
--     http-request set-var(txn.vibra) "url,concat(' ',txn.vibra_state),lua.vibra(2,charsum)"
--     use-server s0 if { var(txn.vibra) -m str s0 }
--     ...
--
-- it returns the name of the server that `vibra_dispatcher_pick_with` chooses for the request
-- target (`url`), from HAProxy's own view of the backend's servers, read per request: HAProxy
-- evaluates `srv_is_up` (not DOWN, not in maintenance) and `srv_conn` (the server's current
-- sessions, `scur` in the stats) of every server natively into the state string, and the glue
-- asks Server:is_draining() (DRAIN, which no sample fetch shows) of the R servers ns, ns+1, ...
-- after the target's sub-namespace ns, and of every server only when one of those R is not up.
--
-- A converter, not a sample fetch: HAProxy builds a whole TXN object (about ten Lua tables)
-- for every call of a Lua sample fetch, and reading each server through txn.f cost a fetch
-- call per value; a converter gets only its input string (README.md: "Where the time goes").
--
-- It returns nothing, after a log line, when anything fails (no such backend, a state that
-- does not list the backend's servers in order, arguments libvibra refuses, a libvibra error,
-- a Lua error): the variable stays unset, no `use-server` rule matches, and HAProxy balances
-- the request with the backend's own `balance` algorithm.
--
-- Servers are numbered 0..N-1 in the order of their ids (the `sid` of get_stats()), which is
-- the order of the `server` lines unless `id` is set on them: the numbering of `vibra-lab map`.
-- The state must list them in that order (checked when the route is built).
--
-- Load it with `lua-load-per-thread` (one Lua state, so one set of dispatchers, per thread; no
-- lock) or `lua-load` (one state shared under HAProxy's Lua lock). Nothing here is shared
-- between states, and nothing is written per request but this state's dispatcher scratch.

local vibra = require("vibra")
local backend_of = vibra.backend

-- Per Lua state: routes[backend][replication][hash] -> route, or false when building it
-- failed. Then every request of that route falls back; the first and every FAILED_LOG_EVERY-th
-- say why in the log (one line per request would flood it).
local routes = {}
local failures = {}
local FAILED_LOG_EVERY = 1000

local function log_fallback(what)
    core.log(core.warning, "vibra: " .. what .. "; HAProxy's own balancing takes the request")
end

-- HAProxy 2.6 gives booleans from Lua as 0 or 1 (is_draining), and 0 is true in Lua.
local function yes(value)
    return value == true or value == 1
end

-- The server names the state's entries list, in their order (none for "<backend>" alone).
local function state_names(input)
    local last = 0
    while true do
        local at = string.find(input, " ", last + 1, true)
        if at == nil then
            break
        end
        last = at
    end
    local names = {}
    for entry in string.sub(input, last + 1):gmatch("/([^/]*)") do
        names[#names + 1] = entry:match("^[^=]*")
    end
    return names
end

-- Whether the state's entries name the route's servers in id order (a state without entries
-- names none: nothing to check). Once they did, route[3] is true: until then vibra.converter's
-- C leaves every state with entries to the Lua, which checks it here.
local function entries_match(route, input)
    local listed = state_names(input)
    if #listed == 0 then
        return true
    end
    if table.concat(listed, ",") ~= table.concat(route.names, ",") then
        return false, "the state lists the servers " .. table.concat(listed, ",") ..
            ", not the backend's servers in id order " .. table.concat(route.names, ",")
    end
    route[3] = true
    return true
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
    local route = { servers = {}, names = {} }
    for i, entry in ipairs(list) do
        route.servers[i] = entry.server
        route.names[i] = entry.name
    end
    route.dispatcher = vibra.new(#list, replication, hash)
    -- where vibra.converter's C reads them; [3] (entries_match) is set once a state is checked
    route[1], route[2] = route.dispatcher, route.names
    route.n = #list
    route.r = route.dispatcher:replication()
    route.cyclic = {}
    for i = 1, route.n + route.r - 1 do
        route.cyclic[i] = route.servers[(i - 1) % route.n + 1]
    end
    return route
end

local function route_for(backend, replication, hash, input)
    local by_backend = routes[backend]
    if by_backend == nil then
        by_backend = {}
        routes[backend] = by_backend
    end
    local by_replication = by_backend[replication]
    if by_replication == nil then
        by_replication = {}
        by_backend[replication] = by_replication
    end
    local route = by_replication[hash]
    local ok, message
    if route == nil then
        ok, route = pcall(build, backend, tonumber(replication), hash)
        if not ok then
            message, route = tostring(route), nil
        end
    end
    if route and not route[3] then
        ok, message = entries_match(route, input)
        if not ok then
            route = nil
        end
    end
    if route == nil then
        route = false
        failures[by_replication] = failures[by_replication] or {}
        failures[by_replication][hash] = { message = message, count = 0 }
    end
    by_replication[hash] = route
    if route == false then
        local failure = failures[by_replication][hash]
        if failure.count % FAILED_LOG_EVERY == 0 then
            log_fallback("backend " .. backend .. ": " .. failure.message ..
                " (" .. failure.count .. " requests before this one)")
        end
        failure.count = failure.count + 1
        return nil
    end
    return route
end

local function no_pick(input, err)
    log_fallback("no pick for " .. string.format("%q", input) .. ": " .. tostring(err))
    return nil
end

-- A member of the target's subset drains, or is down and the subset reaches further: every
-- server is asked, and libvibra picks again without the draining ones.
local function repick(route, input)
    local d, servers = route.dispatcher, route.servers
    for i = 1, route.n do
        if yes(servers[i]:is_draining()) then
            d:set_down(i - 1)
        end
    end
    local index, err = d:repick_state(input)
    if index == nil then
        return no_pick(input, err)
    end
    return route.names[index + 1]
end

-- Everything but the common case, which vibra.converter's C answers itself (below), and the
-- whole route when it is called alone: one flat function with few registers. HAProxy runs
-- every converter call on a fresh Lua thread whose stack has 40 slots, and a C function needs
-- 20 free slots above its arguments: called from a register past about 10 it made the thread
-- grow its stack (a reallocation and a copy per request), as did every nested call (pcall, a
-- helper). So the registers are reused (`route` first holds the backend name, `found` the
-- route table levels and then the cyclic server list), and the R members are checked in a
-- repeat loop over a list that wraps around without a modulo (where a numeric for takes four
-- registers). A Lua error here is caught by HAProxy, which logs it ("Lua converter 'vibra':
-- ...") and leaves the variable unset: the request falls back like any other failure.
local function route_request(input, replication, hash)
    local route, found = backend_of(input)
    if route == nil then
        return no_pick(input, found)
    end
    found = routes[route]
    found = found and found[replication]
    found = found and found[hash]
    if not (found and found[3]) then
        found = route_for(route, replication or "1", hash or "fast", input)
        if found == nil then
            return nil
        end
    end
    route = found
    local index, ns, up = route.dispatcher:pick_state(input)
    if index == nil then
        return no_pick(input, ns)
    end
    if up == 0 then
        -- the common case: HAProxy counts every server usable (nbsrv), so none is down, in
        -- maintenance or draining, and libvibra's pick is final
        return route.names[index + 1]
    end
    if up == 2 then
        return repick(route, input)
    end
    -- The R servers ns, ns+1, ... (cyclic) are all up, so they are exactly the target's subset
    -- whatever the other servers' state (SPEC 3): only they are asked whether they drain
    -- (HAProxy 2.6 answers 0 or 1, and 0 is true in Lua). They are entries ns+1 .. ns+R of
    -- route.cyclic (servers 1..N, then 1..R-1 again).
    found = route.cyclic
    local last = ns + route.r
    repeat
        ns = ns + 1
        up = found[ns]:is_draining()
        if up == true or up == 1 then
            return repick(route, input)
        end
    until ns == last
    return route.names[index + 1]
end

-- The common case (the route built, every server usable) runs in the module's C, which calls
-- route_request for everything else; both give the same answer.
core.register_converters("vibra", vibra.converter(routes, route_request))
