/*
 * lua_vibra.c: the Lua 5.3 C module `vibra` over libvibra, for HAProxy's Lua
 * (SPDX-License-Identifier: MIT OR Apache-2.0).
 *
 *   local vibra = require("vibra")
 *   local d = vibra.new(4, 2, "charsum")        -- servers, replication, hash
 *   local s, err = d:pick("/a.gif?x=1", loads, up)
 *
 * vibra.new(servers, replication, hash)  -> dispatcher (raises a Lua error on bad arguments)
 *   hash is "charsum", "md5", "sha1" or "fast" (SPEC section 2).
 * d:pick(target, loads, up)  -> server index 0..N-1, or nil and a message
 *   loads[i] (i = 1..N) is server i-1's active-connection count, up[i] whether it is up: the
 *   caller's view, passed per call to vibra_dispatcher_pick_with, so nothing shared is written.
 * d:namespace(target)        -> sub-namespace, or nil and a message
 * d:subset(ns)               -> table of server indexes (subset order), or nil and a message
 * d:servers(), d:replication()
 * vibra.version()            -> libvibra's version string
 *
 * HAProxy's converter (vibra_route.lua) passes the request and HAProxy's view of the backend in
 * one string, "<target> <backend>/<entry>/<entry>...", one entry per server in server order:
 * "<name>" or "<name>=<conn>" (usable, as HAProxy's nbsrv says of every server) or
 * "<name>=<up>,<conn>" (<up> 1 or 0 from srv_is_up, <conn> from srv_conn; see README.md), or
 * "<target> <backend>" alone (every server usable, no loads: enough for R = 1):
 * vibra.backend(input)       -> the <backend> name, or nil and a message
 * d:pick_state(input)        -> vibra_dispatcher_pick_with on the target with the state's loads
 *                               and up set: server index 0..N-1, the target's sub-namespace ns
 *                               (0 with status 0) and a status: 0 every server usable (the
 *                               pick is final), 1 the
 *                               R servers ns, ns+1, ... (cyclic) are up but may drain, 2 one of
 *                               them is not up; or nil and a message. Keeps the loads and the
 *                               up set in the scratch arrays.
 * d:set_down(server)         -> marks server (0..N-1) down in the scratch up set
 * d:repick_state(input)      -> the same pick again with the scratch loads and up set (after
 *                               set_down): server index, or nil and a message
 * (pick_state, set_down and repick_state belong to one request: nothing may run on the same
 * dispatcher in between, which holds in HAProxy, where a converter never yields.)
 * vibra.converter(routes, f) -> a C function for core.register_converters: the common case
 *                               (a built route, every server usable) in C, anything else f
 *                               (see l_convert)
 *
 * Thread safety: the module has no global state. Each dispatcher is a full userdata owned by
 * one Lua state and holds its own scratch arrays; HAProxy runs one Lua state on one thread at
 * a time (one state per thread with lua-load-per-thread, a global lock with lua-load), and
 * libvibra's dispatcher functions may run on any number of threads at once.
 */

#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <vibra.h>

#define DISPATCHER_MT "vibra.dispatcher"

typedef struct {
    vibra_dispatcher *d;
    uint32_t servers;
    uint32_t replication;
    size_t words;      /* ceil(servers / 64) */
    uint32_t *loads;   /* servers entries, inside the same userdata */
    uint64_t *up;      /* words entries, inside the same userdata */
} lua_vibra;

static const char *const HASH_NAMES[] = {"charsum", "md5", "sha1", "fast", NULL};
static const vibra_hash HASH_VALUES[] = {VIBRA_HASH_CHARSUM, VIBRA_HASH_MD5, VIBRA_HASH_SHA1,
                                         VIBRA_HASH_FAST};

/* Pushes nil and "<status>: <libvibra's message>"; returns the number of results (2). */
static int push_failure(lua_State *L, vibra_status st) {
    char msg[256];
    msg[0] = '\0';
    vibra_last_error(msg, sizeof msg);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", vibra_status_str(st), msg);
    return 2;
}

/* Every method has the dispatcher metatable as its upvalue: comparing it with argument 1's
 * metatable is luaL_checkudata without the registry lookup by name (a third of a method's
 * cost per request). */
static lua_vibra *check_dispatcher(lua_State *L) {
    lua_vibra *v = (lua_vibra *)lua_touserdata(L, 1);
    int ok = v != NULL && lua_getmetatable(L, 1);
    if (ok) {
        ok = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
    }
    if (!ok) {
        v = (lua_vibra *)luaL_checkudata(L, 1, DISPATCHER_MT); /* raises the usual error */
    }
    if (v->d == NULL) {
        luaL_error(L, "vibra: dispatcher already freed");
    }
    return v;
}

static int l_new(lua_State *L) {
    lua_Integer servers = luaL_checkinteger(L, 1);
    lua_Integer replication = luaL_checkinteger(L, 2);
    vibra_hash hash = HASH_VALUES[luaL_checkoption(L, 3, "fast", HASH_NAMES)];
    if (servers < 1 || servers > (1 << 20)) {
        return luaL_argerror(L, 1, "servers must be in 1..2^20");
    }
    if (replication < 1 || replication > servers) {
        return luaL_argerror(L, 2, "replication must be in 1..servers");
    }
    size_t n = (size_t)servers;
    size_t words = (n + 63) / 64;
    /* one allocation: the struct, the bitset (8-byte aligned after the struct), the loads */
    size_t head = (sizeof(lua_vibra) + 7) / 8 * 8;
    lua_vibra *v = (lua_vibra *)lua_newuserdata(L, head + words * 8 + n * 4);
    memset(v, 0, sizeof *v);
    v->up = (uint64_t *)((char *)v + head);
    v->loads = (uint32_t *)((char *)v->up + words * 8);
    v->servers = (uint32_t)n;
    v->replication = (uint32_t)replication;
    v->words = words;
    luaL_setmetatable(L, DISPATCHER_MT);
    vibra_status st = vibra_dispatcher_new(v->servers, v->replication, hash, &v->d);
    if (st != VIBRA_OK) {
        char msg[256];
        msg[0] = '\0';
        vibra_last_error(msg, sizeof msg);
        return luaL_error(L, "vibra.new: %s: %s", vibra_status_str(st), msg);
    }
    return 1;
}

static int l_gc(lua_State *L) {
    lua_vibra *v = (lua_vibra *)luaL_checkudata(L, 1, DISPATCHER_MT);
    vibra_dispatcher_free(v->d);
    v->d = NULL;
    return 0;
}

/* d:pick(target, loads, up): the loads and the availability are read from the two tables
 * (1-based, N entries each) into the dispatcher's scratch arrays, then one
 * vibra_dispatcher_pick_with call. A missing or non-numeric load, or a negative one, is an
 * error returned as nil + message (never raised), so the caller can fall back. */
static int l_pick(lua_State *L) {
    lua_vibra *v = check_dispatcher(L);
    size_t len = 0;
    const char *target = luaL_checklstring(L, 2, &len);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    memset(v->up, 0, v->words * 8);
    for (uint32_t s = 0; s < v->servers; s++) {
        int isnum = 0;
        lua_rawgeti(L, 3, (lua_Integer)s + 1);
        lua_Integer load = lua_tointegerx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum || load < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "loads[%d] is not a count of connections", (int)s + 1);
            return 2;
        }
        v->loads[s] = load > (lua_Integer)UINT32_MAX ? UINT32_MAX : (uint32_t)load;
        lua_rawgeti(L, 4, (lua_Integer)s + 1);
        if (lua_toboolean(L, -1)) {
            v->up[s / 64] |= (uint64_t)1 << (s % 64);
        }
        lua_pop(L, 1);
    }
    uint32_t server = 0;
    vibra_status st = vibra_dispatcher_pick_with(v->d, target, len, v->loads, v->servers, v->up,
                                                 v->words, &server);
    if (st != VIBRA_OK) {
        return push_failure(L, st);
    }
    lua_pushinteger(L, (lua_Integer)server);
    return 1;
}

/* The converter's input: "<target> <state>", where the state holds no space (HAProxy's proxy
 * and server names cannot), so it starts after the last space. Sets *target_len and returns the
 * state's first byte, or NULL when there is no space. */
static const char *split_input(const char *input, size_t len, size_t *target_len) {
    for (size_t i = len; i > 0; i--) {
        if (input[i - 1] == ' ') {
            *target_len = i - 1;
            return input + i;
        }
    }
    return NULL;
}

static int push_message(lua_State *L, const char *msg) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

static int l_backend(lua_State *L) {
    size_t len = 0, target_len = 0;
    const char *input = luaL_checklstring(L, 1, &len);
    const char *state = split_input(input, len, &target_len);
    if (state == NULL) {
        return push_message(L, "no space between the target and the state");
    }
    const char *end = input + len;
    const char *slash = memchr(state, '/', (size_t)(end - state));
    if (slash == NULL) {
        slash = end;
    }
    if (slash == state) {
        return push_message(L, "the state does not start with the backend's name");
    }
    lua_pushlstring(L, state, (size_t)(slash - state));
    return 1;
}

/* The kinds of state parse_state reads. */
enum state_kind {
    STATE_BARE = 0,     /* "<backend>" alone: every server usable, no loads */
    STATE_USABLE = 1,   /* entries without <up>: every server usable */
    STATE_EXPLICIT = 2, /* some entry has an <up> (srv_is_up, which does not show DRAIN) */
};

/* Parses the state after "<backend>" into v->loads and v->up and sets *kind. The entries are
 * "/<name>" (usable, no load), "/<name>=<conn>" (usable) or "/<name>=<up>,<conn>" (<up> 1 or
 * 0), one per server: the short forms say the writer knows the server usable (HAProxy's nbsrv
 * counts every server). No entry at all is every server usable with no load, all R = 1
 * needs. Returns NULL, or a message (static text) saying what is wrong. */
static const char *parse_state(lua_vibra *v, const char *state, const char *end,
                               enum state_kind *kind) {
    const char *p = memchr(state, '/', (size_t)(end - state));
    if (p == NULL) {
        memset(v->loads, 0, v->servers * sizeof *v->loads);
        memset(v->up, 0xff, v->words * 8); /* bits at or past N are ignored */
        *kind = STATE_BARE;
        return NULL;
    }
    memset(v->up, 0, v->words * 8);
    *kind = STATE_USABLE;
    for (uint32_t s = 0; s < v->servers; s++) {
        if (p == end || *p != '/') {
            return "the state lists fewer servers than the dispatcher has";
        }
        p++;
        while (p < end && *p != '=' && *p != '/') {
            p++;
        }
        int up = 1;
        uint64_t load = 0;
        if (p < end && *p == '=') {
            p++;
            const char *digits = p;
            while (p < end && *p >= '0' && *p <= '9') {
                load = load * 10 + (uint64_t)(*p - '0');
                if (load > UINT32_MAX) {
                    load = UINT32_MAX; /* saturate: a count this large only means "busiest" */
                }
                p++;
            }
            if (p < end && *p == ',') {
                /* what was read is <up>: 0 or 1, then <conn> */
                if (p - digits != 1 || load > 1) {
                    return "a server's <up> is not 0 or 1";
                }
                up = (int)load;
                *kind = STATE_EXPLICIT;
                p++;
                digits = p;
                load = 0;
                while (p < end && *p >= '0' && *p <= '9') {
                    load = load * 10 + (uint64_t)(*p - '0');
                    if (load > UINT32_MAX) {
                        load = UINT32_MAX;
                    }
                    p++;
                }
            }
            if (p == digits) {
                return "a server's <conn> is not a count of connections";
            }
        }
        if (p < end && *p != '/') {
            return "a state entry is not <name>, <name>=<conn> or <name>=<up>,<conn>";
        }
        v->loads[s] = (uint32_t)load;
        if (up) {
            v->up[s / 64] |= (uint64_t)1 << (s % 64);
        }
    }
    if (p != end) {
        return "the state lists more servers than the dispatcher has";
    }
    return NULL;
}

/* vibra_dispatcher_pick_with on the input's target with the scratch loads and up set. */
static int pick_scratch(lua_State *L, lua_vibra *v, const char *input, size_t target_len) {
    uint32_t server = 0;
    vibra_status st = vibra_dispatcher_pick_with(v->d, input, target_len, v->loads, v->servers,
                                                 v->up, v->words, &server);
    if (st != VIBRA_OK) {
        return push_failure(L, st);
    }
    lua_pushinteger(L, (lua_Integer)server);
    return 1;
}

static int l_pick_state(lua_State *L) {
    lua_vibra *v = check_dispatcher(L);
    size_t len = 0, target_len = 0;
    const char *input = luaL_checklstring(L, 2, &len);
    const char *state = split_input(input, len, &target_len);
    if (state == NULL) {
        return push_message(L, "no space between the target and the state");
    }
    enum state_kind kind = STATE_BARE;
    const char *msg = parse_state(v, state, input + len, &kind);
    if (msg != NULL) {
        return push_message(L, msg);
    }
    /* 0: every server usable, the pick is final; 1: the R servers ns, ns+1, ... (cyclic) are
     * up, whether they drain is unknown; 2: one of them is not up. ns is only needed (and only
     * computed) for 1 and 2. */
    int status = 0;
    uint32_t ns = 0;
    if (kind == STATE_EXPLICIT) {
        vibra_status st = vibra_dispatcher_namespace(v->d, input, target_len, &ns);
        if (st != VIBRA_OK) {
            return push_failure(L, st);
        }
        status = 1;
        for (uint32_t j = 0; j < v->replication && status == 1; j++) {
            uint32_t s = (ns + j) % v->servers;
            if (!((v->up[s / 64] >> (s % 64)) & 1)) {
                status = 2;
            }
        }
    }
    if (pick_scratch(L, v, input, target_len) != 1) {
        return 2; /* nil and the message */
    }
    lua_pushinteger(L, (lua_Integer)ns);
    lua_pushinteger(L, (lua_Integer)status);
    return 3;
}

static int l_set_down(lua_State *L) {
    lua_vibra *v = check_dispatcher(L);
    lua_Integer s = luaL_checkinteger(L, 2);
    luaL_argcheck(L, s >= 0 && s < (lua_Integer)v->servers, 2, "no such server");
    v->up[s / 64] &= ~((uint64_t)1 << (s % 64));
    return 0;
}

static int l_repick_state(lua_State *L) {
    lua_vibra *v = check_dispatcher(L);
    size_t len = 0, target_len = 0;
    const char *input = luaL_checklstring(L, 2, &len);
    if (split_input(input, len, &target_len) == NULL) {
        return push_message(L, "no space between the target and the state");
    }
    return pick_scratch(L, v, input, target_len);
}

/* The converter's common case in C (upvalues: 1 the routes table, 2 the Lua function for
 * everything else, 3 the dispatcher metatable). Arguments: input, replication, hash (strings,
 * as HAProxy passes them). With routes[<backend>][replication][hash] a route table holding
 * the dispatcher at [1], the server names (1..N) at [2] and, once the Lua has checked that the
 * entries of a state name the servers in order, true at [3], and a state of short entries
 * only or none (every server usable), it returns the name of the server
 * vibra_dispatcher_pick_with picks;
 * in every other case (no route yet, a failed route, a state with servers' health, anything
 * malformed) it returns what the Lua function returns for the same arguments. So the request
 * path runs no Lua code and makes no Lua-to-C call but this one. */
static int l_convert(lua_State *L) {
    int nargs = lua_gettop(L);
    size_t len = 0, target_len = 0;
    const char *input = nargs == 3 && lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len)
                                                                    : NULL;
    const char *state = input != NULL ? split_input(input, len, &target_len) : NULL;
    const char *slash =
        state != NULL ? memchr(state, '/', (size_t)(input + len - state)) : NULL;
    if (state != NULL && slash == NULL) {
        slash = input + len;
    }
    if (slash == NULL || slash == state || lua_type(L, 2) != LUA_TSTRING ||
        lua_type(L, 3) != LUA_TSTRING) {
        goto slow;
    }
    lua_pushlstring(L, state, (size_t)(slash - state));
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TTABLE) {
        goto slow;
    }
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        goto slow;
    }
    lua_pushvalue(L, 3);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        goto slow; /* not built yet, or false: building it failed */
    }
    int route = lua_gettop(L);
    lua_rawgeti(L, route, 1);
    lua_vibra *v = (lua_vibra *)lua_touserdata(L, -1);
    if (v == NULL || v->d == NULL || !lua_getmetatable(L, -1) ||
        !lua_rawequal(L, -1, lua_upvalueindex(3))) {
        goto slow;
    }
    enum state_kind kind = STATE_BARE;
    if (parse_state(v, state, input + len, &kind) != NULL || kind == STATE_EXPLICIT) {
        goto slow;
    }
    if (kind == STATE_USABLE) {
        lua_rawgeti(L, route, 3);
        if (!lua_toboolean(L, -1)) {
            goto slow; /* the Lua has not yet checked that the entries name the servers */
        }
    }
    uint32_t server = 0;
    if (vibra_dispatcher_pick_with(v->d, input, target_len, v->loads, v->servers, v->up,
                                   v->words, &server) != VIBRA_OK) {
        goto slow;
    }
    if (lua_rawgeti(L, route, 2) != LUA_TTABLE ||
        lua_rawgeti(L, -1, (lua_Integer)server + 1) != LUA_TSTRING) {
        goto slow;
    }
    return 1;
slow:
    lua_settop(L, nargs);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, nargs, 1);
    return 1;
}

/* vibra.converter(routes, fallback) -> the C function above, for core.register_converters. */
static int l_converter(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    luaL_getmetatable(L, DISPATCHER_MT);
    lua_pushcclosure(L, l_convert, 3);
    return 1;
}

static int l_namespace(lua_State *L) {
    lua_vibra *v = check_dispatcher(L);
    size_t len = 0;
    const char *target = luaL_checklstring(L, 2, &len);
    uint32_t ns = 0;
    vibra_status st = vibra_dispatcher_namespace(v->d, target, len, &ns);
    if (st != VIBRA_OK) {
        return push_failure(L, st);
    }
    lua_pushinteger(L, (lua_Integer)ns);
    return 1;
}

static int l_subset(lua_State *L) {
    lua_vibra *v = check_dispatcher(L);
    lua_Integer ns = luaL_checkinteger(L, 2);
    if (ns < 0 || ns >= (lua_Integer)v->servers) {
        lua_pushnil(L);
        lua_pushfstring(L, "sub-namespace %d is not below %d", (int)ns, (int)v->servers);
        return 2;
    }
    /* the loads scratch array holds at least R entries */
    size_t len = 0;
    vibra_status st = vibra_dispatcher_subset(v->d, (uint32_t)ns, v->loads, v->replication, &len);
    if (st != VIBRA_OK) {
        return push_failure(L, st);
    }
    lua_createtable(L, (int)len, 0);
    for (size_t i = 0; i < len; i++) {
        lua_pushinteger(L, (lua_Integer)v->loads[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_servers(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_dispatcher(L)->servers);
    return 1;
}

static int l_replication(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_dispatcher(L)->replication);
    return 1;
}

static int l_version(lua_State *L) {
    const char *version = vibra_version();
    lua_pushstring(L, version != NULL ? version : "unknown");
    return 1;
}

static const luaL_Reg METHODS[] = {
    {"pick", l_pick},       {"namespace", l_namespace},     {"subset", l_subset},
    {"servers", l_servers}, {"replication", l_replication}, {"pick_state", l_pick_state},
    {"set_down", l_set_down}, {"repick_state", l_repick_state}, {NULL, NULL},
};

static const luaL_Reg FUNCTIONS[] = {
    {"new", l_new},
    {"version", l_version},
    {"backend", l_backend},
    {"converter", l_converter},
    {NULL, NULL},
};

int luaopen_vibra(lua_State *L) {
    if (vibra_abi_version() != VIBRA_ABI_VERSION) {
        return luaL_error(L, "vibra: libvibra ABI %d loaded, module built for ABI %d",
                          (int)vibra_abi_version(), (int)VIBRA_ABI_VERSION);
    }
    if (luaL_newmetatable(L, DISPATCHER_MT)) {
        luaL_newlibtable(L, METHODS);
        lua_pushvalue(L, -2);
        luaL_setfuncs(L, METHODS, 1); /* the metatable: check_dispatcher's upvalue */
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, FUNCTIONS);
    return 1;
}
