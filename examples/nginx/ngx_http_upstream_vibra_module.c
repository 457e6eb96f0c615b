/*
 * ngx_http_upstream_vibra_module: URL-hashing to server subsets with
 * least-connections inside the subset (the dispatcher of the Vibra
 * dissertation, section 3.4.3), with the decision made by libvibra.
 *
 *     upstream backends {
 *         zone backends 64k;
 *         vibra_hash $request_uri replication=2 hash=charsum;
 *         server 127.0.0.1:8001 max_fails=1 fail_timeout=10s;
 *         ...
 *     }
 *
 * Design (see README.md beside this file):
 *
 * - Peers are numbered 0..N-1 in the order nginx lists them (the order of
 *   the "server" lines, a name that resolves to several addresses giving
 *   several consecutive peers).  That number is the libvibra server index,
 *   so `vibra-lab map --servers N` predicts where a URL goes.
 * - The per-peer active-connection counts, failure counters and timers are
 *   the round-robin peers' own fields, which the "zone" directive places in
 *   shared memory; the module therefore requires "zone" so that every
 *   worker process sees the same counts.  The choice is made with the
 *   stateless vibra_dispatcher_pick_with() under the peers' write lock (where
 *   nginx's own least_conn holds it), so two workers never decide on the
 *   same stale counts.
 * - A peer is unavailable for a request when it is marked "down", has
 *   failed max_fails times within fail_timeout, is at max_conns, or was
 *   already tried by this request (a retry after proxy_next_upstream), or
 *   is missing from the peer list.  That view is passed per request as an
 *   availability bitset (vibra_dispatcher_pick_with): the module never
 *   writes the dispatcher, so the subset skips unavailable peers (SPEC
 *   section 3, the failure-skip rule) and only the URLs whose subset held
 *   such a peer move.  Failures are recorded by nginx's round-robin free
 *   function, exactly as for nginx's own balancers (max_fails/fail_timeout
 *   semantics).
 * - Little work under the lock: the sub-namespace and its R positions are
 *   computed before taking it (the worker's dispatcher always has every
 *   server up, so its subset is the R positions from the sub-namespace).
 *   Under the lock only those R peers' state is read; when all R are
 *   available, they are exactly the subset under the true availability
 *   whatever the other peers' state, so the choice is made with every other
 *   bit set and no other peer read.  Only when a member is unavailable are
 *   all N peers read, as nginx's least_conn always does.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <vibra.h>


#if !(NGX_HTTP_UPSTREAM_ZONE)
#error "ngx_http_upstream_vibra_module needs nginx built with the upstream zone module"
#endif


typedef struct {
    ngx_http_complex_value_t            key;
    ngx_uint_t                          replication;
    vibra_hash                          hash;

    /* set at init_upstream, one copy per worker process after fork */
    vibra_dispatcher                   *dispatcher;  /* never written after init */
    ngx_uint_t                          number;      /* N at configuration time */
    ngx_uint_t                          words;       /* ceil(N / 64) */
    uint32_t                           *loads;       /* scratch, N entries, zeroed */
    uint64_t                           *up;          /* scratch, words, zeroed */
    uint64_t                           *all_up;      /* bits 0..N-1 set */
    uint32_t                           *members;     /* scratch, R entries, zeroed */
    ngx_http_upstream_rr_peer_t       **member_peer; /* scratch, R entries, NULL */
} ngx_http_upstream_vibra_srv_conf_t;


typedef struct {
    /* the round robin data must be first: nginx's free function uses it */
    ngx_http_upstream_rr_peer_data_t    rrp;
    ngx_http_upstream_vibra_srv_conf_t *conf;
    ngx_str_t                           key;
} ngx_http_upstream_vibra_peer_data_t;


static ngx_int_t ngx_http_upstream_init_vibra(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_upstream_init_vibra_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_upstream_get_vibra_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_upstream_vibra_cleanup(void *data);
static void *ngx_http_upstream_vibra_create_conf(ngx_conf_t *cf);
static char *ngx_http_upstream_vibra(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_upstream_vibra_commands[] = {

    { ngx_string("vibra_hash"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE123,
      ngx_http_upstream_vibra,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_upstream_vibra_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_upstream_vibra_create_conf,   /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_upstream_vibra_module = {
    NGX_MODULE_V1,
    &ngx_http_upstream_vibra_module_ctx,   /* module context */
    ngx_http_upstream_vibra_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* libvibra's message for the last failure on this thread, for the logs;
 * cap must be at least 1 */
static u_char *
ngx_http_upstream_vibra_error(u_char *buf, size_t cap, vibra_status rc)
{
    size_t  len;

    /* the message may be longer than buf: keep the end zero either way */
    ngx_memzero(buf, cap);

    len = vibra_last_error((char *) buf, cap - 1);

    if (len == 0) {
        return (u_char *) vibra_status_str(rc);
    }

    return buf;
}


static ngx_int_t
ngx_http_upstream_init_vibra(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    u_char                              errbuf[256];
    ngx_uint_t                          i;
    vibra_status                        rc;
    ngx_pool_cleanup_t                 *cln;
    ngx_http_upstream_rr_peer_t        *peer;
    ngx_http_upstream_rr_peers_t       *peers;
    ngx_http_upstream_vibra_srv_conf_t *vcf;

    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    vcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_upstream_vibra_module);
    peers = us->peer.data;

    if (us->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "vibra_hash in upstream \"%V\" in %s:%ui needs a "
                      "\"zone\" directive, so that all worker processes "
                      "share the connection counts",
                      &us->host, us->file_name, us->line);
        return NGX_ERROR;
    }

    /*
     * "weight" and "backup" are refused by the directive's flags, but only
     * on "server" lines after it: catch the ones before it here.
     */
    if (peers->next != NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "vibra_hash in upstream \"%V\" in %s:%ui does not "
                      "support \"backup\" servers: the next servers of a "
                      "subset are the backup", &us->host, us->file_name,
                      us->line);
        return NGX_ERROR;
    }

    for (peer = peers->peer; peer; peer = peer->next) {
        if (peer->weight != 1) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "vibra_hash in upstream \"%V\" in %s:%ui does not "
                          "support \"weight\" (server %V)",
                          &us->host, us->file_name, us->line, &peer->name);
            return NGX_ERROR;
        }
    }

    if (vcf->replication > peers->number) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "vibra_hash replication=%ui exceeds the %ui servers "
                      "of upstream \"%V\" in %s:%ui",
                      vcf->replication, peers->number,
                      &us->host, us->file_name, us->line);
        return NGX_ERROR;
    }

    rc = vibra_dispatcher_new((uint32_t) peers->number,
                              (uint32_t) vcf->replication, vcf->hash,
                              &vcf->dispatcher);
    if (rc != VIBRA_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "vibra_dispatcher_new() failed for upstream \"%V\": %s",
                      &us->host,
                      ngx_http_upstream_vibra_error(errbuf, sizeof(errbuf),
                                                    rc));
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        vibra_dispatcher_free(vcf->dispatcher);
        vcf->dispatcher = NULL;
        return NGX_ERROR;
    }

    cln->handler = ngx_http_upstream_vibra_cleanup;
    cln->data = vcf;

    vcf->number = peers->number;
    vcf->words = (vcf->number + 63) / 64;

    /* every scratch array starts initialised (ngx_pcalloc zeroes) */
    vcf->loads = ngx_pcalloc(cf->pool, vcf->number * sizeof(uint32_t));
    vcf->up = ngx_pcalloc(cf->pool, vcf->words * sizeof(uint64_t));
    vcf->all_up = ngx_pcalloc(cf->pool, vcf->words * sizeof(uint64_t));
    vcf->members = ngx_pcalloc(cf->pool, vcf->replication * sizeof(uint32_t));
    vcf->member_peer = ngx_pcalloc(cf->pool, vcf->replication
                                   * sizeof(ngx_http_upstream_rr_peer_t *));
    if (vcf->loads == NULL || vcf->up == NULL || vcf->all_up == NULL
        || vcf->members == NULL || vcf->member_peer == NULL)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < vcf->number; i++) {
        vcf->all_up[i / 64] |= (uint64_t) 1 << (i % 64);
    }

    us->peer.init = ngx_http_upstream_init_vibra_peer;

    return NGX_OK;
}


static void
ngx_http_upstream_vibra_cleanup(void *data)
{
    ngx_http_upstream_vibra_srv_conf_t  *vcf = data;

    vibra_dispatcher_free(vcf->dispatcher);
    vcf->dispatcher = NULL;
}


static ngx_int_t
ngx_http_upstream_init_vibra_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_vibra_srv_conf_t   *vcf;
    ngx_http_upstream_vibra_peer_data_t  *vp;

    vcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_upstream_vibra_module);

    vp = ngx_palloc(r->pool, sizeof(ngx_http_upstream_vibra_peer_data_t));
    if (vp == NULL) {
        return NGX_ERROR;
    }

    r->upstream->peer.data = &vp->rrp;

    if (ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    r->upstream->peer.get = ngx_http_upstream_get_vibra_peer;

    vp->conf = vcf;

    if (ngx_http_complex_value(r, &vcf->key, &vp->key) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "vibra key:\"%V\"", &vp->key);

    return NGX_OK;
}


/* Whether peer number i may take this request (see the design notes above). */
static ngx_inline ngx_uint_t
ngx_http_upstream_vibra_usable(ngx_http_upstream_vibra_peer_data_t *vp,
    ngx_http_upstream_rr_peer_t *peer, ngx_uint_t i, time_t now)
{
    ngx_uint_t  n;
    uintptr_t   m;

    n = i / (8 * sizeof(uintptr_t));
    m = (uintptr_t) 1 << i % (8 * sizeof(uintptr_t));

    return !((vp->rrp.tried[n] & m)
             || peer->down
             || (peer->max_fails
                 && peer->fails >= peer->max_fails
                 && now - peer->checked <= peer->fail_timeout)
             || (peer->max_conns
                 && peer->conns >= peer->max_conns));
}


static ngx_inline uint32_t
ngx_http_upstream_vibra_load(ngx_http_upstream_rr_peer_t *peer)
{
    return peer->conns > UINT32_MAX ? UINT32_MAX : (uint32_t) peer->conns;
}


static ngx_int_t
ngx_http_upstream_get_vibra_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_upstream_vibra_peer_data_t  *vp = data;

    u_char                              errbuf[256];
    size_t                              r;
    time_t                              now;
    uint32_t                            ns, server;
    uintptr_t                           m;
    ngx_int_t                           rc;
    ngx_uint_t                          i, k, n, found, alive, fast;
    vibra_status                        vrc;
    const uint64_t                     *up;
    ngx_http_upstream_rr_peer_t        *peer;
    ngx_http_upstream_rr_peers_t       *peers;
    ngx_http_upstream_vibra_srv_conf_t *vcf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "get vibra peer, try: %ui", pc->tries);

    if (vp->rrp.peers->single) {
        return ngx_http_upstream_get_round_robin_peer(pc, &vp->rrp);
    }

    pc->cached = 0;
    pc->connection = NULL;

    vcf = vp->conf;
    peers = vp->rrp.peers;
    now = ngx_time();

    /*
     * Outside the lock: the sub-namespace and its R positions.  The worker's
     * dispatcher is never told of failures, so its subset is always the R
     * positions from the sub-namespace.
     */
    vrc = vibra_dispatcher_namespace(vcf->dispatcher,
                                     (const char *) vp->key.data, vp->key.len,
                                     &ns);
    if (vrc == VIBRA_OK) {
        vrc = vibra_dispatcher_subset(vcf->dispatcher, ns, vcf->members,
                                      vcf->replication, &r);
    }

    if (vrc != VIBRA_OK || r != vcf->replication) {
        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "vibra_dispatcher_subset() failed: %s",
                      vrc != VIBRA_OK
                      ? ngx_http_upstream_vibra_error(errbuf, sizeof(errbuf),
                                                      vrc)
                      : (u_char *) "short subset");
        return NGX_ERROR;
    }

    ngx_http_upstream_rr_peers_wlock(peers);

    /*
     * Find the R members' peers, following the list only up to the last of
     * them (NULL-safe: a list shorter than at configuration time leaves the
     * missing members NULL, and they count as unavailable).
     */
    for (k = 0; k < r; k++) {
        vcf->member_peer[k] = NULL;
    }

    found = 0;

    for (peer = peers->peer, i = 0;
         peer && i < vcf->number && found < r;
         peer = peer->next, i++)
    {
        k = (i + vcf->number - ns) % vcf->number;

        if (k < r) {
            vcf->member_peer[k] = peer;
            found++;
        }
    }

    /* common case: every member is available; read only their state */
    fast = (found == r);

    for (k = 0; fast && k < r; k++) {
        peer = vcf->member_peer[k];

        if (!ngx_http_upstream_vibra_usable(vp, peer, vcf->members[k], now)) {
            fast = 0;
            break;
        }

        vcf->loads[vcf->members[k]] = ngx_http_upstream_vibra_load(peer);
    }

    if (fast) {
        /* every member up: the subset is these R whatever the others' state */
        up = vcf->all_up;

    } else {
        /* a member is unavailable: read every peer, as least_conn does */
        alive = 0;
        ngx_memzero(vcf->up, vcf->words * sizeof(uint64_t));

        for (peer = peers->peer, i = 0;
             peer && i < vcf->number;
             peer = peer->next, i++)
        {
            vcf->loads[i] = ngx_http_upstream_vibra_load(peer);

            if (ngx_http_upstream_vibra_usable(vp, peer, i, now)) {
                vcf->up[i / 64] |= (uint64_t) 1 << (i % 64);
                alive++;
            }
        }

        if (alive == 0) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                           "get vibra peer, no peer available");
            rc = NGX_BUSY;
            goto done;
        }

        up = vcf->up;
    }

    vrc = vibra_dispatcher_pick_with(vcf->dispatcher,
                                     (const char *) vp->key.data, vp->key.len,
                                     vcf->loads, vcf->number,
                                     up, vcf->words, &server);

    if (vrc != VIBRA_OK || server >= vcf->number
        || !(up[server / 64] >> (server % 64) & 1))
    {
        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "vibra_dispatcher_pick_with() failed: %s",
                      vrc != VIBRA_OK
                      ? ngx_http_upstream_vibra_error(errbuf, sizeof(errbuf),
                                                      vrc)
                      : (u_char *) "chose an unavailable server");
        rc = NGX_ERROR;
        goto done;
    }

    /* the chosen peer: a member on the fast path, else walk (NULL-safe) */
    peer = NULL;

    if (fast) {
        k = (server + vcf->number - ns) % vcf->number;
        peer = k < r ? vcf->member_peer[k] : NULL;

    } else {
        for (peer = peers->peer, i = 0;
             peer && i < server;
             peer = peer->next, i++)
        {
            /* void */
        }
    }

    if (peer == NULL) {
        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "vibra: server %uD is missing from the peer list",
                      server);
        rc = NGX_ERROR;
        goto done;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "get vibra peer, server %uD: %V", server, &peer->name);

    /* a failed peer past fail_timeout gets this request as its probe */
    if (now - peer->checked > peer->fail_timeout) {
        peer->checked = now;
    }

    pc->sockaddr = peer->sockaddr;
    pc->socklen = peer->socklen;
    pc->name = &peer->name;

    peer->conns++;

    vp->rrp.current = peer;

    n = server / (8 * sizeof(uintptr_t));
    m = (uintptr_t) 1 << server % (8 * sizeof(uintptr_t));
    vp->rrp.tried[n] |= m;

    rc = NGX_OK;

done:

    ngx_http_upstream_rr_peers_unlock(peers);

    if (rc == NGX_BUSY) {
        pc->name = peers->name;
    }

    return rc;
}


static void *
ngx_http_upstream_vibra_create_conf(ngx_conf_t *cf)
{
    ngx_http_upstream_vibra_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_upstream_vibra_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->key = { 0 };
     *     conf->dispatcher = NULL;
     *     conf->loads = NULL;
     *     conf->up = NULL;
     *     conf->all_up = NULL;
     *     conf->members = NULL;
     *     conf->member_peer = NULL;
     */

    conf->replication = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_upstream_vibra(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_upstream_vibra_srv_conf_t  *vcf = conf;

    ngx_int_t                          r;
    ngx_str_t                         *value, arg;
    ngx_uint_t                         i;
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_compile_complex_value_t   ccv;

    if (vcf->replication != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &vcf->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* defaults: one server per key (like "hash"), the project's fast hash */
    vcf->replication = 1;
    vcf->hash = VIBRA_HASH_FAST;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "replication=", 12) == 0) {
            r = ngx_atoi(value[i].data + 12, value[i].len - 12);
            if (r == NGX_ERROR || r < 1 || r > 0xffff) {
                goto invalid;
            }

            vcf->replication = (ngx_uint_t) r;
            continue;
        }

        if (ngx_strncmp(value[i].data, "hash=", 5) == 0) {
            arg.data = value[i].data + 5;
            arg.len = value[i].len - 5;

            if (arg.len == 7 && ngx_strncmp(arg.data, "charsum", 7) == 0) {
                vcf->hash = VIBRA_HASH_CHARSUM;

            } else if (arg.len == 3 && ngx_strncmp(arg.data, "md5", 3) == 0) {
                vcf->hash = VIBRA_HASH_MD5;

            } else if (arg.len == 4 && ngx_strncmp(arg.data, "sha1", 4) == 0) {
                vcf->hash = VIBRA_HASH_SHA1;

            } else if (arg.len == 4 && ngx_strncmp(arg.data, "fast", 4) == 0) {
                vcf->hash = VIBRA_HASH_FAST;

            } else {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "load balancing method redefined");
    }

    uscf->peer.init_upstream = ngx_http_upstream_init_vibra;

    /* no weight: the subset rule has none; no backup: the subset is the backup */
    uscf->flags = NGX_HTTP_UPSTREAM_CREATE
                  |NGX_HTTP_UPSTREAM_MAX_CONNS
                  |NGX_HTTP_UPSTREAM_MAX_FAILS
                  |NGX_HTTP_UPSTREAM_FAIL_TIMEOUT
                  |NGX_HTTP_UPSTREAM_DOWN;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\", expected "
                       "\"replication=<1..65535>\" or "
                       "\"hash=charsum|md5|sha1|fast\"", &value[i]);

    return NGX_CONF_ERROR;
}
