/* The byte-level half of the compiled core: see core.h.  Each function names the Python it mirrors. */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory ------------------------------------------------------------------------------------- */

static void *(*m_alloc)(size_t) = malloc;
static void *(*m_zalloc)(size_t, size_t) = calloc;
static void *(*m_resize)(void *, size_t) = realloc;
static void (*m_release)(void *) = free;

void ic_set_allocator(void *(*alloc)(size_t), void *(*zalloc)(size_t, size_t), void *(*resize)(void *, size_t),
                      void (*release)(void *)) {
    m_alloc = alloc;
    m_zalloc = zalloc;
    m_resize = resize;
    m_release = release;
}

void ic_free(void *p) { m_release(p); }

/* ---- small byte helpers (bytes.find / rfind / isspace semantics) ---------------------------------- */

/* Python's bytes.find(sub, start): the first byte by memchr, the rest by memcmp (needles here are short and
 * their first byte rare in the haystack; glibc's memmem pays a setup per call that costs more). */
static long find(const char *s, size_t n, size_t start, const char *sub, size_t m) {
    if (start > n || m > n - start) return -1;
    if (m == 0) return (long)start;
    const char *p = s + start, *last = s + n - m;
    while (p <= last) {
        p = memchr(p, sub[0], (size_t)(last - p) + 1);
        if (!p) return -1;
        if (memcmp(p + 1, sub + 1, m - 1) == 0) return (long)(p - s);
        p++;
    }
    return -1;
}

static long rfind_before(const char *s, size_t end, const char *sub, size_t m) {
    /* highest i with i + m <= end and s[i:i+m] == sub */
    if (m > end) return -1;
    for (size_t i = end - m + 1; i-- > 0;) {
        if (memcmp(s + i, sub, m) == 0) return (long)i;
    }
    return -1;
}

/* character classes of the SYSCALL pattern: re's \d \w \S for bytes (ASCII) and hex digits */
enum { C_DIGIT = 1, C_HEX = 2, C_WORD = 4, C_WS = 8, C_NONWS = 16 };
#define C_DEC (C_DIGIT | C_HEX | C_WORD | C_NONWS)
#define C_HEXLETTER (C_HEX | C_WORD | C_NONWS)
#define C_LETTER (C_WORD | C_NONWS)
static const uint8_t CLS[256] = {
    [0 ... 8] = C_NONWS, ['\t' ... '\r'] = C_WS, [14 ... 31] = C_NONWS, [' '] = C_WS, ['!' ... '/'] = C_NONWS,
    ['0' ... '9'] = C_DEC, [':' ... '@'] = C_NONWS, ['A' ... 'F'] = C_HEXLETTER, ['G' ... 'Z'] = C_LETTER,
    ['[' ... '^'] = C_NONWS, ['_'] = C_LETTER, ['`'] = C_NONWS, ['a' ... 'f'] = C_HEXLETTER,
    ['g' ... 'z'] = C_LETTER, ['{' ... 255] = C_NONWS,
};

static int is_ws(unsigned char ch) { return CLS[ch] & C_WS; }
static int is_digit(unsigned char ch) { return CLS[ch] & C_DIGIT; }
static int is_hex(unsigned char ch) { return CLS[ch] & C_HEX; }
static int hexval(unsigned char ch) { return ch <= '9' ? ch - '0' : ch >= 'a' ? ch - 'a' + 10 : ch - 'A' + 10; }

#define LIT(s) (s), (sizeof(s) - 1)

/* ---- SipHash-1-3 ---------------------------------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                               \
    do {                                                                                                       \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                              \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                                 \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                                 \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                              \
    } while (0)

uint64_t ic_hash(const uint64_t seed[2], const void *data, size_t len) {
    const unsigned char *in = data;
    uint64_t k0 = seed[0], k1 = seed[1];
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = ((uint64_t)len) << 56;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m;
        memcpy(&m, in + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++) b |= ((uint64_t)in[i + j]) << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- events ------------------------------------------------------------------------------------- */

static void rec_free(ic_rec *r) {
    m_release(r->line);
    r->line = NULL;
}

static void event_free(ic_event *ev) {
    if (!ev) return;
    m_release(ev->key);
    rec_free(&ev->syscall);
    rec_free(&ev->cwd);
    rec_free(&ev->sockaddr);
    for (size_t i = 0; i < ev->nexecve; i++) rec_free(&ev->execve[i]);
    m_release(ev->execve);
    m_release(ev);
}

static int rec_set(ic_rec *r, const char *line, size_t len, size_t body) {
    char *copy = m_alloc(len ? len : 1);
    if (!copy) return -1;
    memcpy(copy, line, len);
    m_release(r->line);
    r->line = copy;
    r->len = len;
    r->body = body;
    return 0;
}

/* ---- the in-flight table ------------------------------------------------------------------------ */

static int inflight_grow(ic_core *c) {
    size_t nb = c->nbuckets * 2;
    ic_event **b = m_zalloc(nb, sizeof *b);
    if (!b) return -1;
    for (ic_event *e = c->ihead; e; e = e->inext) {
        size_t i = e->hash & (nb - 1);
        e->hnext = b[i];
        b[i] = e;
    }
    m_release(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
    return 0;
}

static ic_event *inflight_get(ic_core *c, const char *key, size_t keylen, uint64_t h) {
    for (ic_event *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext) {
        if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0) return e;
    }
    return NULL;
}

static void inflight_remove(ic_core *c, ic_event *ev) {
    ic_event **pp = &c->buckets[ev->hash & (c->nbuckets - 1)];
    while (*pp != ev) pp = &(*pp)->hnext;
    *pp = ev->hnext;
    if (ev->iprev) ev->iprev->inext = ev->inext; else c->ihead = ev->inext;
    if (ev->inext) ev->inext->iprev = ev->iprev; else c->itail = ev->iprev;
    ev->hnext = ev->iprev = ev->inext = NULL;
    c->ninflight--;
}

/* ---- recently completed keys -------------------------------------------------------------------- */

static int done_contains(ic_core *c, const char *key, size_t keylen, uint64_t h) {
    for (ic_done_entry *e = c->dbuckets[h & (c->ndbuckets - 1)]; e; e = e->hnext) {
        if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0) return 1;
    }
    return 0;
}

static void done_unlink(ic_core *c, ic_done_entry *d) {
    ic_done_entry **pp = &c->dbuckets[d->hash & (c->ndbuckets - 1)];
    while (*pp != d) pp = &(*pp)->hnext;
    *pp = d->hnext;
}

/* done[key] = None; beyond done_memory the oldest goes (OrderedDict.popitem(last=False)) */
static int done_add(ic_core *c, const char *key, size_t keylen, uint64_t h) {
    ic_done_entry *d = m_alloc(sizeof *d + (keylen ? keylen : 1));
    if (!d) return -1;
    d->hash = h;
    d->keylen = keylen;
    memcpy(d->key, key, keylen);
    size_t i = h & (c->ndbuckets - 1);
    d->hnext = c->dbuckets[i];
    c->dbuckets[i] = d;
    c->dring[(c->dring_head + c->ndone) % c->dring_cap] = d;
    c->ndone++;
    if (c->ndone > c->done_memory) {
        ic_done_entry *old = c->dring[c->dring_head];
        c->dring_head = (c->dring_head + 1) % c->dring_cap;
        c->ndone--;
        done_unlink(c, old);
        m_release(old);
    }
    return 0;
}

/* ---- reorder (reassembly.Reorder) --------------------------------------------------------------- */

static int heap_less(const ic_event *a, const ic_event *b) {
    if (a->ts_ms != b->ts_ms) return a->ts_ms < b->ts_ms;
    if (a->serial != b->serial) return a->serial < b->serial;
    return a->arrival < b->arrival;
}

static int heap_push(ic_core *c, ic_event *ev) {
    if (c->nheap == c->capheap) {
        size_t cap = c->capheap ? c->capheap * 2 : 64;
        ic_event **h = m_resize(c->heap, cap * sizeof *h);
        if (!h) return -1;
        c->heap = h;
        c->capheap = cap;
    }
    size_t i = c->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(ev, c->heap[parent])) break;
        c->heap[i] = c->heap[parent];
        i = parent;
    }
    c->heap[i] = ev;
    return 0;
}

static ic_event *heap_pop(ic_core *c) {
    ic_event *top = c->heap[0];
    ic_event *last = c->heap[--c->nheap];
    size_t n = c->nheap, i = 0;
    if (n) {
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            const ic_event *mv = last;
            if (l < n && heap_less(c->heap[l], mv)) { m = l; mv = c->heap[l]; }
            if (r < n && heap_less(c->heap[r], mv)) { m = r; }
            if (m == i) break;
            c->heap[i] = c->heap[m];
            i = m;
        }
        c->heap[i] = last;
    }
    return top;
}

/* Reorder._release: the event goes to the caller, then is freed. */
static int release(ic_core *c, ic_event *ev) {
    c->released++;
    if (ev->ts_ms < c->frontier) c->late++;
    else c->frontier = ev->ts_ms;
    int rc = c->release(c->ctx, ev, c->released);
    event_free(ev);
    return rc;
}

int ic_release_until(ic_core *c, int64_t ts_ms) {
    while (c->nheap && c->heap[0]->ts_ms <= ts_ms) {
        if (release(c, heap_pop(c)) < 0) return -1;
    }
    return 0;
}

int ic_release_all(ic_core *c) {
    while (c->nheap) {
        if (release(c, heap_pop(c)) < 0) return -1;
    }
    return 0;
}

/* Reorder.push */
static int reorder_push(ic_core *c, ic_event *ev) {
    int64_t ts = ev->ts_ms;
    ev->arrival = ++c->arrival;
    if (c->window_ms <= 0 || ts < c->frontier) return release(c, ev);
    if (heap_push(c, ev) < 0) {
        /* no room to hold it: release it now rather than lose it */
        return release(c, ev);
    }
    if (ts > c->newest_ts) {
        c->newest_ts = ts;
        if (ic_release_until(c, ts - c->window_ms) < 0) return -1;
    }
    if (c->nheap > c->max_held) return release(c, heap_pop(c));
    return 0;
}

/* ---- reassembly (reassembly.Reassembler) -------------------------------------------------------- */

/* Reassembler._complete */
static int complete(ic_core *c, ic_event *ev, int why) {
    inflight_remove(c, ev);
    if (done_add(c, ev->key, ev->keylen, ev->hash) < 0) {
        errno = ENOMEM;
        event_free(ev);
        return -1;
    }
    ev->completed_by = why;
    c->stats.events++;
    return reorder_push(c, ev);
}

static int expire_log_time(ic_core *c, const ic_event *keep) {
    int64_t limit = c->newest_sec - c->log_timeout;
    ic_event *e = c->ihead;
    while (e) {
        ic_event *next = e->inext;
        if (e->seen_sec <= limit && e != keep) {
            c->stats.timed_out++;
            if (complete(c, e, IC_BY_TIMEOUT) < 0) return -1;
        }
        e = next;
    }
    return 0;
}

int ic_expire(ic_core *c, double now) {
    double limit = now - c->wall_timeout;
    ic_event *e = c->ihead;
    while (e) {
        ic_event *next = e->inext;
        if (e->last_wall <= limit) {
            c->stats.timed_out++;
            if (complete(c, e, IC_BY_TIMEOUT) < 0) return -1;
        }
        e = next;
    }
    return 0;
}

int ic_flush(ic_core *c) {
    while (c->ihead) {
        if (complete(c, c->ihead, IC_BY_FLUSH) < 0) return -1;
    }
    return 0;
}

/* records.parse_event_id: "SEC.MS:SERIAL", each part 1..18 ASCII digits (SEC at most 15, MS at most 9). */
static int parse_event_id(const char *eid, size_t n, int64_t *sec, int64_t *ms, int64_t *serial) {
    long dot = find(eid, n, 0, LIT("."));
    if (dot <= 0) return -1;
    long colon = find(eid, n, (size_t)dot + 1, LIT(":"));
    if (colon < 0) return -1;
    ic_span a = {eid, (size_t)dot}, b = {eid + dot + 1, (size_t)(colon - dot - 1)},
            s = {eid + colon + 1, n - (size_t)colon - 1};
    if (a.n > 15 || b.n > 9) return -1;
    if (ic_decimal(a, 0, sec) || ic_decimal(b, 0, ms) || ic_decimal(s, 0, serial)) return -1;
    return 0;
}

enum { T_SYSCALL = 1, T_EXECVE, T_CWD, T_SOCKADDR, T_SOCKETCALL, T_PROCTITLE, T_EOE };

/* records.RELEVANT_TYPES */
static int relevant_type(const char *t, size_t n) {
    switch (n) {
    case 3: return memcmp(t, "CWD", 3) == 0 ? T_CWD : memcmp(t, "EOE", 3) == 0 ? T_EOE : 0;
    case 6: return memcmp(t, "EXECVE", 6) == 0 ? T_EXECVE : 0;
    case 7: return memcmp(t, "SYSCALL", 7) == 0 ? T_SYSCALL : 0;
    case 8: return memcmp(t, "SOCKADDR", 8) == 0 ? T_SOCKADDR : 0;
    case 9: return memcmp(t, "PROCTITLE", 9) == 0 ? T_PROCTITLE : 0;
    case 10: return memcmp(t, "SOCKETCALL", 10) == 0 ? T_SOCKETCALL : 0;
    default: return 0;
    }
}

/* Reassembler.push */
static int push(ic_core *c, const char *node, size_t nodelen, int rtype, const char *eid, size_t eidlen,
                size_t body, const char *line, size_t len, double now) {
    char stackkey[128];
    size_t keylen = nodelen ? nodelen + 1 + eidlen : eidlen;
    char *key = keylen <= sizeof stackkey ? stackkey : m_alloc(keylen);
    if (!key) { errno = ENOMEM; return -1; }
    if (nodelen) {
        memcpy(key, node, nodelen);
        key[nodelen] = '\0';
        memcpy(key + nodelen + 1, eid, eidlen);
    } else {
        memcpy(key, eid, eidlen);
    }
    uint64_t h = ic_hash(c->seed, key, keylen);
    int rc = 0;
    ic_event *ev = inflight_get(c, key, keylen, h);
    if (!ev) {
        if (done_contains(c, key, keylen, h)) {
            c->stats.late_records++;
            goto out;
        }
        if (rtype == T_EOE) goto out; /* EOE of an event never seen: nothing to complete */
        int64_t sec, ms, serial;
        if (parse_event_id(eid, eidlen, &sec, &ms, &serial) < 0) {
            c->stats.bad_ids++;
            goto out;
        }
        if (c->ninflight + 1 > c->nbuckets && inflight_grow(c) < 0) { errno = ENOMEM; rc = -1; goto out; }
        ev = m_zalloc(1, sizeof *ev);
        char *owned = m_alloc(keylen ? keylen : 1);
        if (!ev || !owned) {
            m_release(ev);
            m_release(owned);
            errno = ENOMEM;
            rc = -1;
            goto out;
        }
        memcpy(owned, key, keylen);
        ev->key = owned;
        ev->keylen = keylen;
        ev->nodelen = nodelen;
        ev->hash = h;
        ev->ts_ms = sec * 1000 + ms;
        ev->serial = serial;
        ev->seen_sec = sec;
        size_t bi = h & (c->nbuckets - 1);
        ev->hnext = c->buckets[bi];
        c->buckets[bi] = ev;
        ev->iprev = c->itail;
        if (c->itail) c->itail->inext = ev; else c->ihead = ev;
        c->itail = ev;
        c->ninflight++;
        if (sec > c->newest_sec) {
            int advanced = c->newest_sec != 0;
            c->newest_sec = sec;
            if (advanced && expire_log_time(c, ev) < 0) { rc = -1; goto out; }
        }
        if (c->ninflight > c->max_in_flight) {
            c->stats.evicted++;
            /* the oldest is never `ev` itself: max_in_flight >= 1 and ev is the newest */
            if (complete(c, c->ihead, IC_BY_EVICTED) < 0) { rc = -1; goto out; }
        }
    }
    if (rtype == T_PROCTITLE) { /* the event's last record: complete it, nothing of the record is kept */
        rc = complete(c, ev, IC_BY_PROCTITLE);
        goto out;
    }
    ev->last_wall = now;
    ev->seen_sec = c->newest_sec;
    switch (rtype) {
    case T_SYSCALL:
        if (rec_set(&ev->syscall, line, len, body) < 0) { errno = ENOMEM; rc = -1; }
        break;
    case T_CWD:
        if (rec_set(&ev->cwd, line, len, body) < 0) { errno = ENOMEM; rc = -1; }
        break;
    case T_SOCKADDR:
        if (rec_set(&ev->sockaddr, line, len, body) < 0) { errno = ENOMEM; rc = -1; }
        break;
    case T_EXECVE: {
        size_t size = len - body;
        if (ev->execve_bytes + size <= IC_MAX_EXECVE_BYTES || ev->nexecve == 0) {
            size_t keep = len;
            ev->execve_bytes += size;
            if (size > IC_MAX_EXECVE_BYTES) {
                keep = body + IC_MAX_EXECVE_BYTES;
                ev->execve_cut = 1;
            }
            if (ev->nexecve == ev->capexecve) {
                size_t cap = ev->capexecve ? ev->capexecve * 2 : 2;
                ic_rec *r = m_resize(ev->execve, cap * sizeof *r);
                if (!r) { errno = ENOMEM; rc = -1; break; }
                ev->execve = r;
                ev->capexecve = cap;
            }
            ic_rec *r = &ev->execve[ev->nexecve];
            r->line = NULL;
            if (rec_set(r, line, keep, body) < 0) { errno = ENOMEM; rc = -1; break; }
            ev->nexecve++;
        } else {
            ev->execve_cut = 1;
            c->stats.execve_dropped++;
        }
        break;
    }
    case T_EOE:
        rc = complete(c, ev, IC_BY_EOE);
        break;
    default: /* SOCKETCALL: it only stamps the event */
        break;
    }
out:
    if (key != stackkey) m_release(key);
    return rc;
}

/* records.split_header (for lines not starting with "type=") and its _split_wrapped; returns 1 with the
 * pieces, 0 when the line is not an audit record. */
typedef struct {
    size_t node, nodelen, rtype, rtypelen, eid, eidlen, body;
} header;

static int split_plain(const char *s, size_t n, size_t base, header *h) {
    size_t start;
    h->node = h->nodelen = 0;
    if (n >= 5 && memcmp(s, "type=", 5) == 0) {
        start = 0;
    } else if (n >= 5 && memcmp(s, "node=", 5) == 0) {
        long sp = find(s, n, 5, LIT(" "));
        if (sp < 0) return 0;
        h->node = base + 5;
        h->nodelen = (size_t)sp - 5;
        start = (size_t)sp + 1;
        if (!(n - start >= 5 && memcmp(s + start, "type=", 5) == 0)) return 0;
    } else {
        return 0;
    }
    long m = find(s, n, start + 5, LIT(" msg=audit("));
    if (m < 0) return 0;
    long close = find(s, n, (size_t)m + 11, LIT("):"));
    if (close < 0) return 0;
    h->rtype = base + start + 5;
    h->rtypelen = (size_t)m - (start + 5);
    h->eid = base + (size_t)m + 11;
    h->eidlen = (size_t)(close - m - 11);
    h->body = base + (size_t)close + 2;
    return 1;
}

static int split_header(const char *s, size_t n, header *h) {
    if ((n >= 5 && memcmp(s, "type=", 5) == 0) || (n >= 5 && memcmp(s, "node=", 5) == 0))
        return split_plain(s, n, 0, h);
    long t = find(s, n, 0, LIT("type="));
    if (t < 0) return 0;
    long nd = rfind_before(s, (size_t)t, LIT("node="));
    size_t inner;
    if (nd >= 0 && (nd == 0 || s[nd - 1] == ' ' || s[nd - 1] == '\t') && find(s, n, (size_t)nd, LIT(" ")) == t - 1) {
        inner = (size_t)nd;
    } else if (t == 0 || s[t - 1] == ' ' || s[t - 1] == '\t') {
        inner = (size_t)t;
    } else {
        return 0;
    }
    return split_plain(s + inner, n - inner, inner, h);
}

/* Reassembler.feed, one line */
int ic_feed_line(ic_core *c, const char *line, size_t n, double now) {
    if (n >= 5 && memcmp(line, "type=", 5) == 0) {
        long m = find(line, n, 5, LIT(" msg=audit("));
        if (m < 0) {
            c->malformed++;
            return 0;
        }
        int rtype = relevant_type(line + 5, (size_t)m - 5);
        if (!rtype) return 0;
        long close = find(line, n, (size_t)m + 11, LIT("):"));
        if (close < 0) {
            c->malformed++;
            return 0;
        }
        c->records++;
        return push(c, NULL, 0, rtype, line + m + 11, (size_t)(close - m - 11), (size_t)close + 2, line, n, now);
    }
    size_t i = 0;
    while (i < n && is_ws((unsigned char)line[i])) i++;
    if (i == n) return 0; /* empty or whitespace only */
    header h;
    if (!split_header(line, n, &h)) {
        c->malformed++;
        return 0;
    }
    int rtype = relevant_type(line + h.rtype, h.rtypelen);
    if (!rtype) return 0;
    c->records++;
    return push(c, line + h.node, h.nodelen, rtype, line + h.eid, h.eidlen, h.body, line, n, now);
}

int ic_feed_buffer(ic_core *c, const char *buf, size_t len, double now) {
    size_t start = 0;
    for (;;) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - buf) : len;
        c->lines++;
        if (ic_feed_line(c, buf + start, end - start, now) < 0) return -1;
        if (!nl) break;
        start = end + 1;
    }
    return 0;
}

size_t ic_pending(const ic_core *c) { return c->ninflight + c->nheap; }

int ic_init(ic_core *c, size_t max_in_flight, int64_t log_timeout, double wall_timeout, size_t done_memory,
            int64_t window_ms, size_t max_held, const uint64_t seed[2], ic_release_fn rel, void *ctx) {
    memset(c, 0, sizeof *c);
    if (max_in_flight < 1 || done_memory < 1 || max_held < 1) return -1;
    c->max_in_flight = max_in_flight;
    c->log_timeout = log_timeout;
    c->wall_timeout = wall_timeout;
    c->done_memory = done_memory;
    c->window_ms = window_ms;
    c->max_held = max_held;
    c->seed[0] = seed[0];
    c->seed[1] = seed[1];
    c->release = rel;
    c->ctx = ctx;
    c->nbuckets = 256;
    c->buckets = m_zalloc(c->nbuckets, sizeof *c->buckets);
    size_t nd = 16;
    while (nd < done_memory * 2 && nd < ((size_t)1 << 30)) nd *= 2;
    c->ndbuckets = nd;
    c->dbuckets = m_zalloc(nd, sizeof *c->dbuckets);
    c->dring_cap = done_memory + 1;
    c->dring = m_zalloc(c->dring_cap, sizeof *c->dring);
    c->frontier = -1;
    if (!c->buckets || !c->dbuckets || !c->dring) {
        ic_destroy(c);
        return -1;
    }
    return 0;
}

void ic_destroy(ic_core *c) {
    for (ic_event *e = c->ihead; e;) {
        ic_event *next = e->inext;
        event_free(e);
        e = next;
    }
    for (size_t i = 0; i < c->nheap; i++) event_free(c->heap[i]);
    for (size_t i = 0; c->dring && i < c->ndone; i++) m_release(c->dring[(c->dring_head + i) % c->dring_cap]);
    m_release(c->buckets);
    m_release(c->dbuckets);
    m_release(c->dring);
    m_release(c->heap);
    memset(c, 0, sizeof *c);
}

/* ---- parsing (audit/events.py) ------------------------------------------------------------------ */

int ic_decimal(ic_span s, int sign, int64_t *out) {
    size_t i = 0;
    int neg = 0;
    if (sign && s.n && s.p[0] == '-') {
        neg = 1;
        i = 1;
    }
    size_t digits = s.n - i;
    if (digits < 1 || digits > 18) return -1;
    int64_t v = 0;
    for (; i < s.n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (!is_digit(ch)) return -1;
        v = v * 10 + (ch - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

int ic_hex64(ic_span s, uint64_t *out) {
    if (s.n < 1 || s.n > 16) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (!is_hex(ch)) return -1;
        v = (v << 4) | (uint64_t)hexval(ch);
    }
    *out = v;
    return 0;
}

/* A literal at s[*i]; advances. */
static int lit(const char *s, size_t n, size_t *i, const char *l, size_t m) {
    if (n - *i < m || memcmp(s + *i, l, m) != 0) return 0;
    *i += m;
    return 1;
}

/* A maximal run of class `cls` of length 1..max at s[*i] (the regex's X{1,max} followed by a literal the
 * class cannot contain, so the greedy run is the only candidate); advances. */
static int run(const char *s, size_t n, size_t *i, uint8_t cls, size_t max, ic_span *out) {
    size_t j = *i;
    while (j < n && (CLS[(unsigned char)s[j]] & cls)) j++;
    size_t len = j - *i;
    if (len < 1 || len > max) return 0;
    if (out) {
        out->p = s + *i;
        out->n = len;
    }
    *i = j;
    return 1;
}

/* events.SYSCALL_RE matched at the body:
 *  ?arch=([0-9a-fA-F]{1,16}) syscall=(\d+) (?:per=\w+ )?success=(\w+) exit=(-?\d{1,18}) a0=(\w+) a1=\w+
 *  a2=\w+ a3=\w+ items=\d+ ppid=(\d{1,18}) pid=(\d{1,18}) auid=\d+ uid=(\d{1,18}) gid=\d+ euid=\d+ suid=\d+
 *  fsuid=\d+ egid=\d+ sgid=\d+ fsgid=\d+ tty=(\S+) ses=(\d{1,18}) comm=\S+ exe=(\S+)
 * Each element is followed by a literal its class excludes (or nothing, for exe), so matching is
 * deterministic: no backtracking could find another match. */
int ic_parse_syscall(const ic_rec *r, ic_syscall *o) {
    if (!r->line) return IC_NONE;
    const char *s = r->line;
    size_t n = r->len, i = r->body;
    const size_t BIG = (size_t)-1;
    ic_span arch;
    if (i < n && s[i] == ' ') i++; /* " ?": taking the space is the only way "arch=" can follow */
    if (!lit(s, n, &i, LIT("arch=")) || !run(s, n, &i, C_HEX, 16, &arch)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" syscall=")) || !run(s, n, &i, C_DIGIT, BIG, &o->num)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" "))) return IC_SLOW;
    {
        size_t j = i;
        if (lit(s, n, &j, LIT("per=")) && run(s, n, &j, C_WORD, BIG, NULL) && lit(s, n, &j, LIT(" "))) i = j;
    }
    if (!lit(s, n, &i, LIT("success=")) || !run(s, n, &i, C_WORD, BIG, &o->success)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" exit="))) return IC_SLOW;
    {
        size_t j = i;
        if (j < n && s[j] == '-') j++;
        size_t k = j;
        if (!run(s, n, &k, C_DIGIT, 18, NULL)) return IC_SLOW;
        o->exit.p = s + i;
        o->exit.n = k - i;
        i = k;
    }
    if (!lit(s, n, &i, LIT(" a0=")) || !run(s, n, &i, C_WORD, BIG, &o->a0)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" a1=")) || !run(s, n, &i, C_WORD, BIG, NULL)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" a2=")) || !run(s, n, &i, C_WORD, BIG, NULL)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" a3=")) || !run(s, n, &i, C_WORD, BIG, NULL)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" items=")) || !run(s, n, &i, C_DIGIT, BIG, NULL)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" ppid=")) || !run(s, n, &i, C_DIGIT, 18, &o->ppid)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" pid=")) || !run(s, n, &i, C_DIGIT, 18, &o->pid)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" auid=")) || !run(s, n, &i, C_DIGIT, BIG, NULL)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" uid=")) || !run(s, n, &i, C_DIGIT, 18, &o->uid)) return IC_SLOW;
    static const char *const ids[] = {" gid=", " euid=", " suid=", " fsuid=", " egid=", " sgid=", " fsgid="};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        if (!lit(s, n, &i, ids[k], strlen(ids[k])) || !run(s, n, &i, C_DIGIT, BIG, NULL)) return IC_SLOW;
    }
    if (!lit(s, n, &i, LIT(" tty=")) || !run(s, n, &i, C_NONWS, BIG, &o->tty)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" ses=")) || !run(s, n, &i, C_DIGIT, 18, &o->ses)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" comm=")) || !run(s, n, &i, C_NONWS, BIG, NULL)) return IC_SLOW;
    if (!lit(s, n, &i, LIT(" exe=")) || !run(s, n, &i, C_NONWS, BIG, &o->exe)) return IC_SLOW;
    if (ic_hex64(arch, &o->arch) || ic_decimal(o->exit, 1, &o->exit_v) || ic_decimal(o->ppid, 0, &o->ppid_v) ||
        ic_decimal(o->pid, 0, &o->pid_v) || ic_decimal(o->uid, 0, &o->uid_v) || ic_decimal(o->ses, 0, &o->ses_v))
        return IC_SLOW; /* unreachable: the runs above are bounded digits */
    return IC_FAST;
}

int ic_value_of(const char *line, size_t len, size_t off, const char *name, size_t namelen, ic_span *out) {
    long i = find(line, len, off, name, namelen);
    if (i < 0) return 0;
    size_t start = (size_t)i + namelen;
    long j = find(line, len, start, LIT(" "));
    long k = find(line, len, start, LIT("\x1d"));
    if (k >= 0 && (j < 0 || k < j)) j = k;
    out->p = line + start;
    out->n = (j < 0 ? len : (size_t)j) - start;
    return 1;
}

/* events.parse's CWD fast path: ` cwd="/path"` and nothing after it, no space or 0x1D inside. */
int ic_cwd(const ic_rec *r, ic_span *out) {
    const char *s = r->line;
    size_t n = r->len, off = r->body;
    if (n - off >= 6 && memcmp(s + off, " cwd=\"", 6) == 0) {
        long q = find(s, n, off + 6, LIT("\""));
        if (q >= 0 && (size_t)q == n - 1) {
            const char *v = s + off + 6;
            size_t vn = (size_t)q - (off + 6);
            if (!memchr(v, ' ', vn) && !memchr(v, 0x1d, vn)) {
                out->p = v;
                out->n = vn;
                return IC_FAST;
            }
        }
    }
    return IC_SLOW;
}

/* records.decode(value) (encoded=True), without a copy: 0 for (null); otherwise 1 with *out the text
 * (IC_ARG_TEXT: a "quoted" value without its quotes, a lone leading quote cut off, or the bytes as they are)
 * or the hex digits to decode (IC_ARG_HEX: even length, hex digits only). */
static int decode_value(const char *p, size_t n, ic_arg *out) {
    out->kind = IC_ARG_TEXT;
    if (n && p[0] == '"') {
        out->v.p = p + 1;
        out->v.n = n >= 2 && p[n - 1] == '"' ? n - 2 : n - 1;
        return 1;
    }
    if (n == 6 && memcmp(p, "(null)", 6) == 0) return 0;
    int hex = n > 0 && n % 2 == 0;
    for (size_t i = 0; hex && i < n; i++) hex = is_hex((unsigned char)p[i]) != 0;
    out->kind = hex ? IC_ARG_HEX : IC_ARG_TEXT;
    out->v.p = p;
    out->v.n = n;
    return 1;
}

/* records.decode(_value_of(line, off, b"saddr=")) */
int ic_saddr(const ic_rec *r, unsigned char **out, size_t *outlen) {
    ic_span v;
    ic_arg d;
    *out = NULL;
    *outlen = 0;
    if (!ic_value_of(r->line, r->len, r->body, LIT("saddr="), &v) || !decode_value(v.p, v.n, &d)) return IC_NONE;
    size_t m = d.kind == IC_ARG_HEX ? d.v.n / 2 : d.v.n;
    if (m == 0) return IC_NONE;
    unsigned char *b = m_alloc(m);
    if (!b) return -1;
    if (d.kind == IC_ARG_HEX) {
        ic_unhex(d.v, (char *)b);
    } else {
        memcpy(b, d.v.p, m);
    }
    *out = b;
    *outlen = m;
    return IC_FAST;
}

/* execve._single_record: toks = line[body:].split(); "argc=N" first (N plain digits here: another spelling
 * int() takes goes to the reference), N == len(toks) - 1, then toks[i + 1] = "?I=value" for I = 0..N-1 (the
 * reference compares tok[1:eq] with str(I) and ignores the first byte).  A value is "quoted" text, or as
 * records.decode(value) gives it: a lone leading quote cut off, (null) empty, even-length hex decoded, else
 * the bytes as they are. */
long ic_argv_single(const ic_rec *r, ic_arg **out) {
    const char *s = r->line;
    size_t n = r->len, i = r->body;
    *out = NULL;
    size_t ntok = 0;
    for (size_t j = i; j < n;) {
        while (j < n && is_ws((unsigned char)s[j])) j++;
        if (j == n) break;
        ntok++;
        while (j < n && !is_ws((unsigned char)s[j])) j++;
    }
    while (i < n && is_ws((unsigned char)s[i])) i++;
    if (ntok == 0 || n - i < 5 || memcmp(s + i, "argc=", 5) != 0) return -1;
    size_t t = i + 5, e = t;
    while (e < n && !is_ws((unsigned char)s[e])) e++;
    int64_t argc;
    ic_span num = {s + t, e - t};
    if (ic_decimal(num, 0, &argc) < 0 || argc < 0 || (uint64_t)argc != ntok - 1) return -1;
    if (argc == 0) return 0;
    ic_arg *args = m_alloc((size_t)argc * sizeof *args);
    if (!args) return -2;
    i = e;
    for (int64_t k = 0; k < argc; k++) {
        while (i < n && is_ws((unsigned char)s[i])) i++;
        size_t b = i;
        while (i < n && !is_ws((unsigned char)s[i])) i++;
        const char *tok = s + b;
        size_t tn = i - b;
        const char *eq = memchr(tok, '=', tn);
        char want[24];
        int wn = 0;
        int64_t v = k;
        char rev[24];
        do {
            rev[wn++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        for (int q = 0; q < wn; q++) want[q] = rev[wn - 1 - q];
        if (!eq || eq == tok || (size_t)(eq - tok - 1) != (size_t)wn || memcmp(tok + 1, want, (size_t)wn) != 0) {
            m_release(args);
            return -1;
        }
        const char *p = eq + 1;
        size_t pn = tn - (size_t)(p - tok);
        ic_arg *a = &args[k];
        if (!decode_value(p, pn, a)) { /* (null): an empty argument */
            a->kind = IC_ARG_TEXT;
            a->v.p = p;
            a->v.n = 0;
        }
    }
    *out = args;
    return (long)argc;
}

int ic_unhex(ic_span hex, char *out) {
    if (hex.n % 2) return -1;
    for (size_t i = 0; i < hex.n; i += 2) {
        unsigned char a = (unsigned char)hex.p[i], b = (unsigned char)hex.p[i + 1];
        if (!is_hex(a) || !is_hex(b)) return -1;
        out[i / 2] = (char)(hexval(a) << 4 | hexval(b));
    }
    return 0;
}
