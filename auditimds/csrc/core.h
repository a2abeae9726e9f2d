/* The byte-level half of auditimds' compiled core: audit.log lines in, reassembled, time-ordered and parsed
 * audit events out.  Plain C (no Python API), so a fuzzer can drive it directly (csrc/fuzz_core.c).
 *
 * It follows the Python reference exactly (auditimds/audit/reassembly.py, records.py, events.py); every form
 * it does not handle itself it flags for the caller, which asks the Python reference (IC_SLOW results).
 * Every length is explicit; input bytes are never assumed NUL-terminated.
 */
#ifndef AUDITIMDS_CORE_H
#define AUDITIMDS_CORE_H

#include <stddef.h>
#include <stdint.h>

/* Why an event completed (reassembly.py's COMPLETE_*). */
enum { IC_BY_PROCTITLE = 1, IC_BY_EOE, IC_BY_TIMEOUT, IC_BY_EVICTED, IC_BY_FLUSH };

/* EXECVE bytes kept per event (reassembly.MAX_EXECVE_BYTES). */
#define IC_MAX_EXECVE_BYTES (64 * 1024)

typedef struct {
    char *line; /* a copy of the whole line (header included); NULL when absent */
    size_t len;
    size_t body; /* offset of the body (after "): ") */
} ic_rec;

typedef struct ic_event {
    struct ic_event *hnext;         /* hash chain of the in-flight table */
    struct ic_event *iprev, *inext; /* insertion order of the in-flight table */
    uint64_t hash;
    char *key; /* node "\0" eid, or eid alone */
    size_t keylen;
    size_t nodelen; /* node = key[0:nodelen] (0: no node) */
    int64_t ts_ms, serial, seen_sec;
    double last_wall;
    int completed_by;
    uint64_t arrival; /* the reorder buffer's tiebreaker */
    ic_rec syscall, cwd, sockaddr;
    ic_rec *execve;
    size_t nexecve, capexecve;
    size_t execve_bytes;
    int execve_cut;
} ic_event;

/* Called for each event released in time order, with its sequence number.  Returns 0, or -1 to stop the
 * feed (the caller's error, e.g. a Python exception); the event is freed by the core after the call. */
typedef int (*ic_release_fn)(void *ctx, ic_event *ev, uint64_t seq);

typedef struct {
    uint64_t events, evicted, timed_out, late_records, bad_ids, execve_dropped;
} ic_stats;

typedef struct ic_done_entry {
    struct ic_done_entry *hnext;
    uint64_t hash;
    size_t keylen;
    char key[];
} ic_done_entry;

typedef struct {
    /* settings */
    size_t max_in_flight;
    int64_t log_timeout;
    double wall_timeout;
    size_t done_memory;
    int64_t window_ms;
    size_t max_held;
    uint64_t seed[2];
    ic_release_fn release;
    void *ctx;
    /* in flight: chained hash table + insertion list */
    ic_event **buckets;
    size_t nbuckets, ninflight;
    ic_event *ihead, *itail;
    /* recently completed keys: chained hash table + FIFO ring */
    ic_done_entry **dbuckets;
    size_t ndbuckets;
    ic_done_entry **dring;
    size_t dring_cap, dring_head, ndone;
    int64_t newest_sec;
    /* reorder heap */
    ic_event **heap;
    size_t nheap, capheap;
    uint64_t arrival, released;
    int64_t newest_ts, frontier;
    uint64_t late;
    /* counters */
    uint64_t lines, malformed, records;
    ic_stats stats;
} ic_core;

/* Where the core's memory comes from (default: the C library's).  The CPython binding sets Python's raw
 * allocator, so tracemalloc and the interpreter's statistics see the core's memory too.  Set it before
 * the first ic_init. */
void ic_set_allocator(void *(*alloc)(size_t), void *(*zalloc)(size_t, size_t), void *(*resize)(void *, size_t),
                      void (*release)(void *));

/* 0 on success, -1 on allocation failure or invalid settings (max_in_flight and done_memory must be >= 1). */
int ic_init(ic_core *c, size_t max_in_flight, int64_t log_timeout, double wall_timeout, size_t done_memory,
            int64_t window_ms, size_t max_held, const uint64_t seed[2], ic_release_fn release, void *ctx);
void ic_destroy(ic_core *c);

/* Each returns 0, or -1 when a release callback failed (processing stopped there) or memory ran out
 * (errno ENOMEM, nothing of the record kept). */
int ic_feed_line(ic_core *c, const char *line, size_t len, double now);
/* `buf` holds lines separated by '\n' exactly as bytes.split(b"\n") cuts them (a trailing '\n' ends an empty
 * last line; the buffer itself is one line when it has none). */
int ic_feed_buffer(ic_core *c, const char *buf, size_t len, double now);
int ic_expire(ic_core *c, double now);
int ic_flush(ic_core *c);
int ic_release_all(ic_core *c);
int ic_release_until(ic_core *c, int64_t ts_ms);

size_t ic_pending(const ic_core *c);

/* ---- parsing a released event (audit/events.py) ---------------------------------------------------- */

typedef struct {
    const char *p;
    size_t n;
} ic_span;

enum { IC_NONE = 0, IC_FAST = 1, IC_SLOW = 2 };

/* The SYSCALL fields of the kernel's fixed layout (events.SYSCALL_RE).  IC_SLOW: the record has another
 * layout (or a number beyond the bounds the regex sets) and the reference's generic parser decides. */
typedef struct {
    uint64_t arch;
    ic_span num, a0, success, exit, ppid, pid, uid, tty, ses, exe;
    int64_t exit_v, ppid_v, pid_v, uid_v, ses_v;
} ic_syscall;

int ic_parse_syscall(const ic_rec *r, ic_syscall *out);

/* Parse a bounded decimal (1..18 ASCII digits, optional '-' when `sign`); 0 on success. */
int ic_decimal(ic_span s, int sign, int64_t *out);

/* Parse a bounded hex number (1..16 hex digits, either case); 0 on success. */
int ic_hex64(ic_span s, uint64_t *out);

/* The raw value of field `name` (with its '=') in a record: events._value_of.  0 when absent. */
int ic_value_of(const char *line, size_t len, size_t off, const char *name, size_t namelen, ic_span *out);

/* CWD fast path: IC_FAST with the path bytes (undecoded: the caller decodes UTF-8 with backslashreplace),
 * IC_SLOW when the record has another form (the reference's decode_path(_value_of(...)) decides). */
int ic_cwd(const ic_rec *r, ic_span *out);

/* saddr= decoded as records.decode does: IC_NONE when absent, (null) or empty (no address), IC_FAST with
 * the raw bytes in *out (the caller frees them with ic_free) otherwise.  -1 on allocation failure. */
int ic_saddr(const ic_rec *r, unsigned char **out, size_t *outlen);

/* One argument of an EXECVE record: `v` as it is (TEXT: its bytes; HEX: hex digits to decode). */
enum { IC_ARG_TEXT = 0, IC_ARG_HEX = 1 };
typedef struct {
    ic_span v;
    int kind;
} ic_arg;

/* execve._single_record's fast path: the usual record, `argc=N a0=.. a(N-1)=..` in order, nothing split.
 * Returns the number of arguments with *out an array of them (the caller frees it with ic_free; NULL when
 * there are none), or -1 when the record has another form (the reference decides), -2 when out of memory. */
long ic_argv_single(const ic_rec *r, ic_arg **out);

/* Decode `hex` (an even number of hex digits) into out[0:hex.n / 2]; -1 if it is not that. */
int ic_unhex(ic_span hex, char *out);

void ic_free(void *p);

/* Hash used by the tables (SipHash-1-3 with the core's seed). */
uint64_t ic_hash(const uint64_t seed[2], const void *data, size_t len);

#endif
