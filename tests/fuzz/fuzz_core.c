/* libFuzzer harness for the byte-level half of the compiled core (auditimds/csrc/core.c), built with
 * AddressSanitizer and UndefinedBehaviorSanitizer by tests/fuzz/run.sh.
 *
 * The input is an audit log as an attacker could shape it.  Its first bytes choose the core's settings (small
 * tables, so eviction, timeouts and reordering all happen); the rest is cut into feeds at 0xFF bytes, with a
 * wall-clock expiry between some of them.  Every released event is parsed the way the binding parses it, and
 * the core's invariants are checked after every call: any violation aborts, which libFuzzer reports.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define CHECK(cond)                                                                                            \
    do {                                                                                                       \
        if (!(cond)) abort();                                                                                  \
    } while (0)

static int within(const ic_rec *r, ic_span s) {
    return s.p == NULL || (s.p >= r->line && s.p + s.n <= r->line + r->len);
}

static uint64_t released;

static int on_release(void *ctx, ic_event *ev, uint64_t seq) {
    (void)ctx;
    CHECK(seq == ++released);
    CHECK(ev->execve_bytes <= IC_MAX_EXECVE_BYTES || ev->nexecve == 1);
    for (size_t i = 0; i < ev->nexecve; i++) {
        CHECK(ev->execve[i].body <= ev->execve[i].len);
        CHECK(ev->execve[i].len - ev->execve[i].body <= IC_MAX_EXECVE_BYTES);
    }
    if (ev->syscall.line) {
        ic_syscall s;
        memset(&s, 0, sizeof s);
        if (ic_parse_syscall(&ev->syscall, &s) == IC_FAST) {
            CHECK(within(&ev->syscall, s.num) && within(&ev->syscall, s.a0) && within(&ev->syscall, s.exe));
            CHECK(within(&ev->syscall, s.tty) && s.exe.n > 0 && s.tty.n > 0);
            CHECK(s.pid_v >= 0 && s.ppid_v >= 0);
        }
    }
    if (ev->cwd.line) {
        ic_span v = {NULL, 0};
        if (ic_cwd(&ev->cwd, &v) == IC_FAST) CHECK(within(&ev->cwd, v) && !memchr(v.p, ' ', v.n));
    }
    if (ev->sockaddr.line) {
        unsigned char *raw = NULL;
        size_t n = 0;
        int k = ic_saddr(&ev->sockaddr, &raw, &n);
        CHECK(k != -1);
        if (k == IC_FAST) {
            CHECK(n > 0 && n <= ev->sockaddr.len);
            unsigned char sum = 0;
            for (size_t i = 0; i < n; i++) sum ^= raw[i]; /* every byte is readable */
            CHECK(sum == sum);
            ic_free(raw);
        } else {
            CHECK(raw == NULL);
        }
    }
    return 0;
}

static void invariants(const ic_core *c) {
    CHECK(c->ninflight <= c->max_in_flight);
    CHECK(c->nheap <= c->max_held);
    CHECK(c->ndone <= c->done_memory);
    CHECK(c->records + c->malformed <= c->lines);
    size_t n = 0;
    for (const ic_event *e = c->ihead; e; e = e->inext) n++;
    CHECK(n == c->ninflight);
    for (size_t i = 1; i < c->nheap; i++) CHECK(c->heap[(i - 1) / 2]->ts_ms <= c->heap[i]->ts_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t max_in_flight = 1 + data[0] % 8, max_held = 1 + data[1] % 8, done = 1 + data[2] % 16;
    int64_t window = (int64_t)(data[3] % 4) * 1000 - 1000;
    data += 4;
    size -= 4;
    const uint64_t seed[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    ic_core c;
    released = 0;
    if (ic_init(&c, max_in_flight, 2, 2.0, done, window, max_held, seed, on_release, NULL) < 0) abort();
    double now = 1000.0;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != 0xFF) continue;
        ic_feed_buffer(&c, (const char *)data + start, i - start, now);
        invariants(&c);
        if (i + 1 < size && data[i + 1] == 0xFE) {
            now += 3.0;
            ic_expire(&c, now);
            invariants(&c);
        }
        start = i + 1;
    }
    ic_flush(&c);
    ic_release_all(&c);
    CHECK(c.ninflight == 0 && c.nheap == 0);
    CHECK(released == c.stats.events);
    ic_destroy(&c);
    return 0;
}
