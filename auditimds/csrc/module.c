/* auditimds._core: the compiled per-line hot path, the CPython half.
 *
 * core.c reassembles, orders and parses audit records; this file keeps the process table and builds the
 * ECS events, exactly as the Python reference does (auditimds/ecs/normalize.py, ecs/process_table.py,
 * audit/events.py).  What it builds is made of the reference's own Python types (EcsEvent, LazyArgs) and
 * helpers, all passed in by auditimds/core.py: this module imports nothing.  Forms the C does not handle
 * itself (a SYSCALL record of another layout, a quoted-less path, an IPv6 address...) are handed to the
 * reference's functions, so both cores give the same bytes by construction; tests/test_core_differential.py
 * holds them to it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "core.h"

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) {
    Py_INCREF(o);
    return o;
}
static inline PyObject *Py_XNewRef(PyObject *o) {
    Py_XINCREF(o);
    return o;
}
#endif

#define TABLE_ARGV_BYTES 4096 /* normalize.TABLE_ARGV_BYTES */
#define UNSET_SESSION 4294967295LL

/* The detector's syscall names (audit/syscalls.py). */
enum { N_NONE = 0, N_EXECVE, N_EXECVEAT, N_CONNECT, N_SOCKETCALL, N_ACCEPT, N_ACCEPT4, N_IO_URING_SETUP, N_COUNT };
static const char *const NAME_TEXT[N_COUNT] = {
    NULL, "execve", "execveat", "connect", "socketcall", "accept", "accept4", "io_uring_setup"};

/* ---- interned strings ------------------------------------------------------------------------------ */

#define STRINGS(X)                                                                                             \
    X(k_category, "event.category") X(k_type, "event.type") X(k_action, "event.action") X(k_host_id, "host.id") \
    X(k_os_type, "host.os.type") X(k_pid, "process.pid") X(k_executable, "process.executable")               \
    X(k_name, "process.name") X(k_cwd, "process.working_directory") X(k_ppid, "process.parent.pid")          \
    X(k_pexecutable, "process.parent.executable") X(k_pname, "process.parent.name")                          \
    X(k_lpid, "process.entry_leader.pid") X(k_lexecutable, "process.entry_leader.executable")                \
    X(k_lname, "process.entry_leader.name") X(k_ltype, "process.entry_leader.entry_meta.type")               \
    X(k_dst_ip, "destination.ip") X(k_dst_address, "destination.address") X(k_dst_port, "destination.port")  \
    X(k_src_ip, "source.ip") X(k_src_address, "source.address") X(k_src_port, "source.port")                 \
    X(k_network_type, "network.type") X(v_process, "process") X(v_start, "start") X(v_exec, "exec")          \
    X(v_linux, "linux") X(v_network, "network") X(v_accepted, "connection_accepted")                         \
    X(v_attempted, "connection_attempted") X(v_ipv4, "ipv4") X(v_ipv6, "ipv6") X(v_info, "info")             \
    X(v_io_uring_setup, "io_uring_setup") X(v_init, "init") X(v_sshd, "sshd") X(v_container, "container")    \
    X(v_terminal, "terminal") X(v_unknown, "unknown") X(v_none_tty, "(none)") X(v_too_long, "<too_long>")    \
    X(v_no_memory, "<no_memory>") X(s_get, "get") X(s_start_key, "start_key") X(s_executable, "executable")  \
    X(s_ppid, "ppid") X(s_args, "args") X(s_cwd, "cwd") X(s_ip, "ip") X(s_address, "address")                \
    X(s_port, "port") X(s_family, "family")

#define DECLARE(var, text) static PyObject *var;
STRINGS(DECLARE)
#undef DECLARE

static PyObject *empty_tuple;
/* the reference's execve.rebuild_argv (set by Core.__init__), and this module's own fast version of it */
static PyObject *g_argv_reference, *g_argv_fast;

static int init_strings(void) {
#define MAKE(var, text)                                                                                        \
    if (!(var = PyUnicode_InternFromString(text))) return -1;
    STRINGS(MAKE)
#undef MAKE
    if (!(empty_tuple = PyTuple_New(0))) return -1;
    return 0;
}

/* ---- Proc: one process of the table (process_table.Proc) ------------------------------------------- */

typedef struct Proc {
    PyObject_HEAD
    int64_t pid;
    int has_ppid;
    int64_t ppid;
    PyObject *executable, *name, *args, *cwd; /* NULL = None */
    int64_t start_ms;
    PyObject *start_key, *host_id, *entity_id, *tty, *leader_type;
    struct Proc *leader, *parent_proc;
    int has_uid, has_ses, exec_seen;
    int64_t uid, ses;
    PyObject *entity_fn; /* process_table.entity_id_of */
} Proc;

static PyTypeObject ProcType;

static Proc *proc_new(int64_t pid, PyObject *host_id, PyObject *start_key, int64_t start_ms, PyObject *entity_fn) {
    Proc *p = PyObject_GC_New(Proc, &ProcType);
    if (!p) return NULL;
    p->pid = pid;
    p->has_ppid = 0;
    p->ppid = 0;
    p->executable = p->name = p->args = p->cwd = NULL;
    p->start_ms = start_ms;
    p->start_key = Py_XNewRef(start_key);
    p->host_id = Py_NewRef(host_id);
    p->entity_id = p->tty = p->leader_type = NULL;
    p->leader = p->parent_proc = NULL;
    p->has_uid = p->has_ses = p->exec_seen = 0;
    p->uid = p->ses = 0;
    p->entity_fn = Py_NewRef(entity_fn);
    PyObject_GC_Track(p);
    return p;
}

static int proc_traverse(Proc *p, visitproc visit, void *arg) {
    Py_VISIT(p->executable);
    Py_VISIT(p->name);
    Py_VISIT(p->args);
    Py_VISIT(p->cwd);
    Py_VISIT(p->start_key);
    Py_VISIT(p->host_id);
    Py_VISIT(p->entity_id);
    Py_VISIT(p->tty);
    Py_VISIT(p->leader_type);
    Py_VISIT((PyObject *)p->leader);
    Py_VISIT((PyObject *)p->parent_proc);
    Py_VISIT(p->entity_fn);
    return 0;
}

static int proc_clear(Proc *p) {
    Py_CLEAR(p->executable);
    Py_CLEAR(p->name);
    Py_CLEAR(p->args);
    Py_CLEAR(p->cwd);
    Py_CLEAR(p->start_key);
    Py_CLEAR(p->host_id);
    Py_CLEAR(p->entity_id);
    Py_CLEAR(p->tty);
    Py_CLEAR(p->leader_type);
    Py_CLEAR(p->leader);
    Py_CLEAR(p->parent_proc);
    Py_CLEAR(p->entity_fn);
    return 0;
}

static void proc_dealloc(Proc *p) {
    PyObject_GC_UnTrack(p);
    proc_clear(p);
    PyObject_GC_Del(p);
}

static PyObject *opt(PyObject *o) { return Py_NewRef(o ? o : Py_None); }
static PyObject *opt_int(int has, int64_t v) { return has ? PyLong_FromLongLong(v) : Py_NewRef(Py_None); }

static PyObject *proc_get_pid(Proc *p, void *c) { (void)c; return PyLong_FromLongLong(p->pid); }
static PyObject *proc_get_ppid(Proc *p, void *c) { (void)c; return opt_int(p->has_ppid, p->ppid); }
static PyObject *proc_get_executable(Proc *p, void *c) { (void)c; return opt(p->executable); }
static PyObject *proc_get_name(Proc *p, void *c) { (void)c; return opt(p->name); }
static PyObject *proc_get_args(Proc *p, void *c) { (void)c; return opt(p->args); }
static PyObject *proc_get_cwd(Proc *p, void *c) { (void)c; return opt(p->cwd); }
static PyObject *proc_get_start_ms(Proc *p, void *c) { (void)c; return PyLong_FromLongLong(p->start_ms); }
static PyObject *proc_get_start_key(Proc *p, void *c) { (void)c; return opt(p->start_key); }
static PyObject *proc_get_host_id(Proc *p, void *c) { (void)c; return opt(p->host_id); }
static PyObject *proc_get_uid(Proc *p, void *c) { (void)c; return opt_int(p->has_uid, p->uid); }
static PyObject *proc_get_ses(Proc *p, void *c) { (void)c; return opt_int(p->has_ses, p->ses); }
static PyObject *proc_get_tty(Proc *p, void *c) { (void)c; return opt(p->tty); }
static PyObject *proc_get_leader(Proc *p, void *c) { (void)c; return opt((PyObject *)p->leader); }
static PyObject *proc_get_leader_type(Proc *p, void *c) { (void)c; return opt(p->leader_type); }
static PyObject *proc_get_exec_seen(Proc *p, void *c) { (void)c; return PyBool_FromLong(p->exec_seen); }
static PyObject *proc_get_parent_proc(Proc *p, void *c) { (void)c; return opt((PyObject *)p->parent_proc); }

static PyObject *proc_get_entity_id(Proc *p, void *c) {
    (void)c;
    if (!p->entity_id) {
        PyObject *pid = PyLong_FromLongLong(p->pid), *ms = PyLong_FromLongLong(p->start_ms);
        if (pid && ms) {
            PyObject *args[4] = {p->host_id, pid, p->start_key ? p->start_key : Py_None, ms};
            p->entity_id = PyObject_Vectorcall(p->entity_fn, args, 4, NULL);
        }
        Py_XDECREF(pid);
        Py_XDECREF(ms);
        if (!p->entity_id) return NULL;
    }
    return Py_NewRef(p->entity_id);
}

static PyObject *proc_repr(Proc *p) {
    PyObject *start = p->start_key ? Py_NewRef(p->start_key) : Py_NewRef(Py_None);
    PyObject *ppid = proc_get_ppid(p, NULL);
    PyObject *r = NULL;
    if (ppid) r = PyUnicode_FromFormat("Proc(%lld, ppid=%S, exe=%R, start=%S)", (long long)p->pid, ppid,
                                       p->executable ? p->executable : Py_None, start);
    Py_XDECREF(ppid);
    Py_DECREF(start);
    return r;
}

static PyGetSetDef proc_getset[] = {
    {"pid", (getter)proc_get_pid, NULL, NULL, NULL},
    {"ppid", (getter)proc_get_ppid, NULL, NULL, NULL},
    {"executable", (getter)proc_get_executable, NULL, NULL, NULL},
    {"name", (getter)proc_get_name, NULL, NULL, NULL},
    {"args", (getter)proc_get_args, NULL, NULL, NULL},
    {"cwd", (getter)proc_get_cwd, NULL, NULL, NULL},
    {"start_ms", (getter)proc_get_start_ms, NULL, NULL, NULL},
    {"start_key", (getter)proc_get_start_key, NULL, NULL, NULL},
    {"host_id", (getter)proc_get_host_id, NULL, NULL, NULL},
    {"entity_id", (getter)proc_get_entity_id, NULL, NULL, NULL},
    {"uid", (getter)proc_get_uid, NULL, NULL, NULL},
    {"ses", (getter)proc_get_ses, NULL, NULL, NULL},
    {"tty", (getter)proc_get_tty, NULL, NULL, NULL},
    {"leader", (getter)proc_get_leader, NULL, NULL, NULL},
    {"leader_type", (getter)proc_get_leader_type, NULL, NULL, NULL},
    {"exec_seen", (getter)proc_get_exec_seen, NULL, NULL, NULL},
    {"parent_proc", (getter)proc_get_parent_proc, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ProcType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "auditimds._core.Proc",
    .tp_basicsize = sizeof(Proc),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A process of the compiled core's table (read-only; see ecs/process_table.Proc).",
    .tp_dealloc = (destructor)proc_dealloc,
    .tp_traverse = (traverseproc)proc_traverse,
    .tp_clear = (inquiry)proc_clear,
    .tp_repr = (reprfunc)proc_repr,
    .tp_getset = proc_getset,
};

/* ---- the process table (process_table.ProcessTable) ------------------------------------------------ */

/* One pid of the table.  The entry keeps its place in the LRU order when a reused pid gets a new Proc, as
 * assigning to an existing OrderedDict key does. */
typedef struct Entry {
    int64_t pid;
    Proc *proc;
    struct Entry *hnext, *prev, *next;
} Entry;

typedef struct {
    PyObject *host_id;
    PyObject *resolver; /* NULL for node tables */
    size_t max_entries;
    Entry **buckets;
    size_t nbuckets, n;
    Entry *head, *tail; /* head: least recently touched */
    uint64_t dropped, pid_reuse;
} Table;

typedef struct Core Core;

static size_t pid_bucket(const Table *t, int64_t pid) {
    uint64_t x = (uint64_t)pid + 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return (size_t)(x & (t->nbuckets - 1));
}

static Entry *table_entry(const Table *t, int64_t pid) {
    for (Entry *e = t->buckets[pid_bucket(t, pid)]; e; e = e->hnext)
        if (e->pid == pid) return e;
    return NULL;
}

static Proc *table_get(const Table *t, int64_t pid) {
    Entry *e = table_entry(t, pid);
    return e ? e->proc : NULL;
}

static void lru_unlink(Table *t, Entry *e) {
    if (e->prev) e->prev->next = e->next; else t->head = e->next;
    if (e->next) e->next->prev = e->prev; else t->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_append(Table *t, Entry *e) {
    e->prev = t->tail;
    e->next = NULL;
    if (t->tail) t->tail->next = e; else t->head = e;
    t->tail = e;
}

static void table_touch(Table *t, Entry *e) { /* move_to_end */
    if (t->tail == e) return;
    lru_unlink(t, e);
    lru_append(t, e);
}

static int table_grow(Table *t) {
    size_t nb = t->nbuckets * 2;
    Entry **b = PyMem_Calloc(nb, sizeof *b);
    if (!b) {
        PyErr_NoMemory();
        return -1;
    }
    Entry **old = t->buckets;
    t->buckets = b;
    t->nbuckets = nb;
    for (Entry *e = t->head; e; e = e->next) {
        size_t i = pid_bucket(t, e->pid);
        e->hnext = b[i];
        b[i] = e;
    }
    PyMem_Free(old);
    return 0;
}

static void table_remove(Table *t, Entry *e) {
    Entry **pp = &t->buckets[pid_bucket(t, e->pid)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(t, e);
    t->n--;
    Py_DECREF(e->proc);
    PyMem_Free(e);
}

static Table *table_create(PyObject *host_id, PyObject *resolver, size_t max_entries) {
    Table *t = PyMem_Calloc(1, sizeof *t);
    if (!t) return (Table *)PyErr_NoMemory();
    t->nbuckets = 1024;
    t->buckets = PyMem_Calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->buckets) {
        PyMem_Free(t);
        return (Table *)PyErr_NoMemory();
    }
    t->host_id = Py_NewRef(host_id);
    t->resolver = Py_XNewRef(resolver);
    t->max_entries = max_entries;
    return t;
}

static void table_free(Table *t) {
    if (!t) return;
    while (t->head) table_remove(t, t->head);
    Py_XDECREF(t->host_id);
    Py_XDECREF(t->resolver);
    PyMem_Free(t->buckets);
    PyMem_Free(t);
}

static int table_traverse(Table *t, visitproc visit, void *arg) {
    if (!t) return 0;
    Py_VISIT(t->host_id);
    Py_VISIT(t->resolver);
    for (Entry *e = t->head; e; e = e->next) Py_VISIT((PyObject *)e->proc);
    return 0;
}

/* ---- the core object --------------------------------------------------------------------------------- */

/* The core's references to Python objects, listed once: the struct, tp_traverse, tp_clear and __init__
 * are made from these lists. */
#define CORE_OWN(X) X(emit) X(host_id) X(host_name) X(node_index)
/* the reference's types and helpers, by their name in the helpers namespace core.py passes in */
#define CORE_HELPERS(X)                                                                                        \
    X(ecs_type, "EcsEvent") X(lazyargs_type, "LazyArgs") X(output_keys, "OUTPUT_KEYS")                          \
    X(fill_output, "fill_output") X(partial, "partial") X(rebuild_argv, "rebuild_argv")                        \
    X(rebuild_cut, "rebuild_cut") X(table_argv, "table_argv") X(lazyargs_of, "lazyargs_of")                    \
    X(generic_syscall, "generic_syscall") X(syscall_name, "syscall_name") X(decode_path, "decode_path")        \
    X(cwd_slow, "cwd_slow") X(decode_sockaddr, "decode_sockaddr") X(entity_id_of, "entity_id_of")              \
    X(runtimes, "CONTAINER_RUNTIMES")
/* the member descriptors of the slots set on the events and argv objects built without __init__ */
#define CORE_DESCRS(X)                                                                                         \
    X(d_ts_ms, ecs_type, "ts_ms") X(d_seq, ecs_type, "seq") X(d_args, ecs_type, "args")                        \
    X(d_parent_args, ecs_type, "parent_args") X(d_filler, ecs_type, "filler")                                  \
    X(d_output_keys, ecs_type, "output_keys") X(d_proc, ecs_type, "proc") X(d_parent, ecs_type, "parent")     \
    X(d_decode, lazyargs_type, "_decode") X(d_source, lazyargs_type, "_source")                                \
    X(d_argv, lazyargs_type, "_argv") X(d_truncated, lazyargs_type, "_truncated")
#define CORE_FIELD1(f) PyObject *f;
#define CORE_FIELD2(f, name) PyObject *f;
#define CORE_FIELD3(f, type, name) PyObject *f;

typedef struct {
    uint64_t arch;
    int64_t nr;
    int name;
} SyscallEntry;

struct Core {
    PyObject_HEAD
    ic_core c;
    int ready;
    int busy; /* inside feed/expire/flush/release_all: the emit callback must not call them again */
    CORE_OWN(CORE_FIELD1) /* node_index: dict, node bytes -> index in nodes[] */
    CORE_HELPERS(CORE_FIELD2)
    CORE_DESCRS(CORE_FIELD3)
    PyObject *names[N_COUNT];
    Table *main;
    Table **nodes;
    size_t nnodes, capnodes;
    int has_self_pid;
    int64_t self_pid;
    size_t max_procs;
    uint64_t n_exec, n_network;
    SyscallEntry *sc;
    size_t nsc;
    int64_t sockcall_nr[8];
    int sockcall_name[8];
    size_t nsockcall;
};

/* a slotted instance of a Python class without running its __init__: tp_new, then its member descriptors */
static int set_slot(PyObject *descr, PyObject *obj, PyObject *value) {
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value ? value : Py_None);
}

static PyObject *new_instance(PyObject *type) {
    PyTypeObject *tp = (PyTypeObject *)type;
    return tp->tp_new(tp, empty_tuple, NULL);
}

static PyObject *basename_of(PyObject *path) {
    /* process_table.basename: sys.intern(path.rsplit("/", 1)[-1]) or None; None for None or "" */
    if (!path || PyUnicode_GET_LENGTH(path) == 0) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(path);
    Py_ssize_t slash = PyUnicode_FindChar(path, '/', 0, n, -1);
    if (slash == -2) return (PyObject *)-1;
    PyObject *b = PyUnicode_Substring(path, slash + 1, n);
    if (!b) return (PyObject *)-1;
    if (PyUnicode_GET_LENGTH(b) == 0) {
        Py_DECREF(b);
        return NULL;
    }
    PyUnicode_InternInPlace(&b);
    return b;
}

#define IS_ERR(o) ((o) == (PyObject *)-1)

static int set_name(Proc *p, PyObject *executable) {
    PyObject *b = basename_of(executable);
    if (IS_ERR(b)) return -1;
    Py_XSETREF(p->name, b);
    return 0;
}

static PyObject *interned(PyObject *s) { /* _intern: a new reference, NULL for None */
    if (!s) return NULL;
    Py_INCREF(s);
    PyUnicode_InternInPlace(&s);
    return s;
}

/* ProcessTable._new: a new Proc for `pid`, which takes the pid's place (or the newest place) */
static Proc *table_new(Core *core, Table *t, int64_t pid, int64_t ts_ms, PyObject *start_key) {
    Proc *p = proc_new(pid, t->host_id, start_key, ts_ms, core->entity_id_of);
    if (!p) return NULL;
    Entry *e = table_entry(t, pid);
    if (e) {
        Py_SETREF(e->proc, p); /* OrderedDict: assigning to an existing key keeps its place */
        return p;
    }
    if (t->n + 1 > t->nbuckets && table_grow(t) < 0) {
        Py_DECREF(p);
        return NULL;
    }
    e = PyMem_Malloc(sizeof *e);
    if (!e) {
        Py_DECREF(p);
        return (Proc *)PyErr_NoMemory();
    }
    e->pid = pid;
    e->proc = p;
    size_t i = pid_bucket(t, pid);
    e->hnext = t->buckets[i];
    t->buckets[i] = e;
    lru_append(t, e);
    t->n++;
    if (t->n > t->max_entries) {
        Py_INCREF(p); /* max_entries >= 1: the oldest is another entry, but keep ours alive regardless */
        table_remove(t, t->head);
        t->dropped++;
        Py_DECREF(p);
    }
    return p; /* borrowed: the table holds it */
}

static int same_process(const Proc *p, int64_t ppid, int has_ses, int64_t ses, int reparent_ok) {
    if (!reparent_ok && p->has_ppid && p->ppid != ppid && ppid != 1) return 0;
    if (p->has_ses && has_ses && p->ses != ses) return 0;
    return 1;
}

/* ProcessTable._current (borrowed reference) */
static Proc *table_current(Core *core, Table *t, int64_t pid, int64_t ppid, int has_ses, int64_t ses,
                           int64_t ts_ms, int reparent_ok) {
    Entry *e = table_entry(t, pid);
    if (!e) return table_new(core, t, pid, ts_ms, NULL);
    if (!same_process(e->proc, ppid, has_ses, ses, reparent_ok)) {
        t->pid_reuse++;
        return table_new(core, t, pid, ts_ms, NULL);
    }
    table_touch(t, e);
    return e->proc;
}

static PyObject *info_get(PyObject *info, PyObject *key) { /* info.get(key), a new reference */
    return PyObject_CallMethodOneArg(info, s_get, key);
}

/* ProcessTable.parent (borrowed reference) */
static Proc *table_parent(Core *core, Table *t, int64_t ppid, int64_t ts_ms) {
    Entry *e = table_entry(t, ppid);
    if (e) {
        table_touch(t, e);
        return e->proc;
    }
    if (!t->resolver) return table_new(core, t, ppid, ts_ms, NULL);
    PyObject *pp = PyLong_FromLongLong(ppid);
    if (!pp) return NULL;
    PyObject *info = PyObject_CallOneArg(t->resolver, pp);
    Py_DECREF(pp);
    if (!info) return NULL;
    int truth = PyObject_IsTrue(info);
    if (truth <= 0) {
        Py_DECREF(info);
        return truth < 0 ? NULL : table_new(core, t, ppid, ts_ms, NULL);
    }
    Proc *p = NULL;
    PyObject *start_key = info_get(info, s_start_key), *exe = NULL, *pp2 = NULL, *args = NULL, *cwd = NULL;
    if (!start_key) goto done;
    p = table_new(core, t, ppid, ts_ms, start_key == Py_None ? NULL : start_key);
    if (!p) goto done;
    if (!(exe = info_get(info, s_executable))) goto fail;
    Py_XSETREF(p->executable, exe == Py_None ? NULL : Py_NewRef(exe));
    if (set_name(p, p->executable) < 0) goto fail;
    if (!(pp2 = info_get(info, s_ppid))) goto fail;
    if (pp2 == Py_None) {
        p->has_ppid = 0;
    } else {
        p->ppid = PyLong_AsLongLong(pp2);
        if (p->ppid == -1 && PyErr_Occurred()) goto fail;
        p->has_ppid = 1;
    }
    if (!(args = info_get(info, s_args))) goto fail;
    if (args != Py_None) {
        PyObject *lst = PySequence_List(args);
        if (!lst) goto fail;
        PyObject *la = PyObject_CallOneArg(core->lazyargs_of, lst);
        Py_DECREF(lst);
        if (!la) goto fail;
        Py_XSETREF(p->args, la);
    }
    if (!(cwd = info_get(info, s_cwd))) goto fail;
    Py_XSETREF(p->cwd, cwd == Py_None ? NULL : Py_NewRef(cwd));
    goto done;
fail:
    p = NULL;
done:
    Py_XDECREF(start_key);
    Py_XDECREF(exe);
    Py_XDECREF(pp2);
    Py_XDECREF(args);
    Py_XDECREF(cwd);
    Py_DECREF(info);
    return p;
}

/* ProcessTable.parent_of (borrowed; NULL with no error: None) */
static Proc *table_parent_of(Core *core, Table *t, Proc *p, int64_t ts_ms, int *err) {
    if (p->parent_proc) return p->parent_proc;
    if (!p->has_ppid) return NULL;
    Proc *r = table_parent(core, t, p->ppid, ts_ms);
    if (!r) *err = 1;
    return r;
}

static int str_eq(PyObject *a, PyObject *b) { /* a == b for str-or-NULL values */
    if (a == b) return 1;
    if (!a || !b) return 0;
    return PyUnicode_Compare(a, b) == 0;
}

/* ProcessTable.observe (borrowed) */
static Proc *table_observe(Core *core, Table *t, int64_t pid, int64_t ppid, PyObject *exe, int64_t ts_ms,
                           int has_uid, int64_t uid, int has_ses, int64_t ses) {
    Proc *p = table_current(core, t, pid, ppid, has_ses, ses, ts_ms, 1);
    if (!p) return NULL;
    if (!p->parent_proc && !p->has_ppid) {
        Proc *pp = table_get(t, ppid);
        Py_XINCREF(pp);
        p->parent_proc = pp;
    }
    p->has_ppid = 1;
    p->ppid = ppid;
    if (exe && PyUnicode_GET_LENGTH(exe) > 0 && !str_eq(p->executable, exe)) {
        Py_XSETREF(p->executable, interned(exe));
        if (set_name(p, exe) < 0) return NULL;
        Py_CLEAR(p->args); /* argv of another image would be wrong */
    }
    if (has_uid) {
        p->has_uid = 1;
        p->uid = uid;
    }
    if (has_ses) {
        p->has_ses = 1;
        p->ses = ses;
    }
    return p;
}

static int name_in_runtimes(Core *core, PyObject *name) {
    if (!name) return 0;
    return PySet_Contains(core->runtimes, name);
}

static void set_leader(Proc *p, Proc *leader, PyObject *type) {
    Py_XINCREF(leader);
    Py_XSETREF(p->leader, leader);
    Py_XINCREF(type);
    Py_XSETREF(p->leader_type, type);
}

/* ProcessTable._entry_leader */
static int entry_leader(Core *core, Table *t, Proc *p) {
    if (p->pid <= 2 || !p->has_ppid || p->ppid == 0 || p->ppid == 2) {
        set_leader(p, NULL, NULL);
        return 0;
    }
    if (p->leader == p) return 0; /* an entry leader that execs stays the entry leader */
    Proc *parent = table_get(t, p->ppid);
    int same_ses = parent && (parent->has_ses == p->has_ses) && (!p->has_ses || parent->ses == p->ses);
    if (parent && parent->leader && same_ses) {
        set_leader(p, parent->leader, parent->leader_type);
        return 0;
    }
    if (p->ppid == 1) {
        set_leader(p, p, v_init);
        return 0;
    }
    if (parent && str_eq(parent->name, v_sshd) && !str_eq(p->name, v_sshd)) {
        set_leader(p, p, v_sshd);
        return 0;
    }
    if (parent) {
        int r = name_in_runtimes(core, parent->name);
        if (r < 0) return -1;
        if (r) {
            set_leader(p, p, v_container);
            return 0;
        }
    }
    if (p->has_ses && p->ses != UNSET_SESSION && parent && parent->has_ses && parent->ses != p->ses) {
        int tty = p->tty && PyUnicode_GET_LENGTH(p->tty) > 0 && !str_eq(p->tty, v_none_tty);
        set_leader(p, p, tty ? v_terminal : v_unknown);
        return 0;
    }
    set_leader(p, NULL, NULL);
    return 0;
}

/* ProcessTable.exec (borrowed) */
static Proc *table_exec(Core *core, Table *t, int64_t pid, int64_t ppid, PyObject *exe, PyObject *args,
                        PyObject *cwd, int64_t ts_ms, int has_uid, int64_t uid, int has_ses, int64_t ses,
                        PyObject *tty, Proc *parent) {
    Proc *p = table_current(core, t, pid, ppid, has_ses, ses, ts_ms, 0);
    if (!p) return NULL;
    if (!p->parent_proc || !p->has_ppid || p->ppid != ppid) {
        Proc *pp = parent ? parent : table_get(t, ppid);
        Py_XINCREF(pp);
        Py_XSETREF(p->parent_proc, pp);
    }
    p->has_ppid = 1;
    p->ppid = ppid;
    Py_XSETREF(p->executable, interned(exe));
    if (set_name(p, exe) < 0) return NULL;
    Py_XINCREF(args);
    Py_XSETREF(p->args, args);
    if (cwd) Py_XSETREF(p->cwd, interned(cwd));
    p->has_uid = has_uid;
    p->uid = uid;
    if (has_ses) {
        p->has_ses = 1;
        p->ses = ses;
    }
    Py_XSETREF(p->tty, interned(tty));
    p->exec_seen = 1;
    if (entry_leader(core, t, p) < 0) return NULL;
    return p;
}

/* ---- normalization (ecs/normalize.py) ------------------------------------------------------------------- */

/* What audit/events.parse gives for one event. */
typedef struct {
    int name;
    int success;
    int64_t pid, ppid, uid, ses;
    int has_uid, has_ses;
    int little;
    PyObject *exe;   /* str or NULL */
    PyObject *tty_b; /* raw bytes (slow path) or NULL */
    ic_span tty;     /* fast path (p NULL when absent) */
} Parsed;

static int name_id(Core *core, PyObject *name) {
    if (name == Py_None) return N_NONE;
    for (int i = 1; i < N_COUNT; i++) {
        int eq = PyObject_RichCompareBool(name, core->names[i], Py_EQ);
        if (eq < 0) return -1;
        if (eq) return i;
    }
    return N_NONE; /* not a name the detector uses (cannot happen: the reference returns only these) */
}

/* The detector's name of syscall= (events.parse's lookup, syscall_name); the reference decides for forms
 * the table cannot (a number of more than 18 digits, socketcall's a0 that is not plain hex). */
static int lookup_name(Core *core, uint64_t arch, ic_span num, ic_span a0) {
    int64_t nr;
    if (ic_decimal(num, 0, &nr) == 0) {
        int name = N_NONE;
        for (size_t i = 0; i < core->nsc; i++) {
            if (core->sc[i].arch == arch && core->sc[i].nr == nr) {
                name = core->sc[i].name;
                break;
            }
        }
        if (name != N_SOCKETCALL) return name;
        uint64_t a0v;
        if (ic_hex64(a0, &a0v) == 0) {
            int64_t call = (int64_t)a0v; /* >= 2**63: negative, in no table, as _int's None */
            if (call == 0) call = -1;    /* `_int(a0, 16) or -1` */
            for (size_t i = 0; i < core->nsockcall; i++)
                if (core->sockcall_nr[i] == call) return core->sockcall_name[i];
            return N_NONE;
        }
    }
    PyObject *a = PyLong_FromUnsignedLongLong(arch);
    PyObject *nb = PyBytes_FromStringAndSize(num.p, (Py_ssize_t)num.n);
    PyObject *ab = PyBytes_FromStringAndSize(a0.p, (Py_ssize_t)a0.n);
    int r = -1;
    if (a && nb && ab) {
        PyObject *args[3] = {a, nb, ab};
        PyObject *name = PyObject_Vectorcall(core->syscall_name, args, 3, NULL);
        if (name) {
            r = name_id(core, name);
            Py_DECREF(name);
        }
    }
    Py_XDECREF(a);
    Py_XDECREF(nb);
    Py_XDECREF(ab);
    return r;
}

static PyObject *rec_bytes(const ic_rec *r) { return PyBytes_FromStringAndSize(r->line, (Py_ssize_t)r->len); }

static PyObject *utf8(const char *p, size_t n) { return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "backslashreplace"); }

/* exe: the usual quoted form here, the rest by the reference's decode_path.  *out is NULL for None;
 * returns -1 on error. */
static int decode_exe(Core *core, const char *p, size_t n, PyObject *raw, PyObject **out) {
    *out = NULL;
    if (n >= 1 && p[0] == '"' && p[n - 1] == '"') {
        *out = n >= 2 ? utf8(p + 1, n - 2) : PyUnicode_FromStringAndSize("", 0);
        return *out ? 0 : -1;
    }
    PyObject *b = raw ? Py_NewRef(raw) : PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
    if (!b) return -1;
    PyObject *r = PyObject_CallOneArg(core->decode_path, b);
    Py_DECREF(b);
    if (!r) return -1;
    if (r == Py_None) {
        Py_DECREF(r);
        return 0;
    }
    if (!PyUnicode_CheckExact(r)) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "decode_path must return a str or None");
        return -1;
    }
    *out = r;
    return 0;
}

static int as_opt_int(PyObject *o, int *has, int64_t *v) {
    if (o == Py_None) {
        *has = 0;
        *v = 0;
        return 0;
    }
    *v = PyLong_AsLongLong(o);
    if (*v == -1 && PyErr_Occurred()) return -1;
    *has = 1;
    return 0;
}

/* audit/events.parse; 1 parsed, 0 no event (no SYSCALL record, no pid), -1 error */
static int parse_event(Core *core, const ic_event *ev, Parsed *o) {
    memset(o, 0, sizeof *o);
    ic_syscall sc;
    int k = ic_parse_syscall(&ev->syscall, &sc);
    if (k == IC_NONE) return 0;
    if (k == IC_FAST) {
        o->pid = sc.pid_v;
        o->ppid = sc.ppid_v;
        o->uid = sc.uid_v;
        o->ses = sc.ses_v;
        o->has_uid = o->has_ses = 1;
        o->success = sc.success.n == 3 && memcmp(sc.success.p, "yes", 3) == 0;
        o->little = (sc.arch & 0x40000000ULL) != 0;
        o->name = lookup_name(core, sc.arch, sc.num, sc.a0);
        if (o->name < 0) return -1;
        o->tty = sc.tty;
        return decode_exe(core, sc.exe.p, sc.exe.n, NULL, &o->exe) < 0 ? -1 : 1;
    }
    PyObject *line = rec_bytes(&ev->syscall), *off = PyLong_FromSize_t(ev->syscall.body), *g = NULL;
    int rc = -1;
    if (!line || !off) goto out;
    PyObject *args[2] = {line, off};
    g = PyObject_Vectorcall(core->generic_syscall, args, 2, NULL);
    if (!g) goto out;
    if (g == Py_None) {
        rc = 0;
        goto out;
    }
    /* (arch, name, success, exit, pid, ppid, uid, ses, exe, tty) */
    if (!PyTuple_Check(g) || PyTuple_GET_SIZE(g) != 10) {
        PyErr_SetString(PyExc_TypeError, "generic_syscall must return a 10-tuple");
        goto out;
    }
    PyObject *arch = PyTuple_GET_ITEM(g, 0);
    o->little = arch == Py_None ? 1 : (PyLong_AsUnsignedLongLongMask(arch) & 0x40000000ULL) != 0;
    if (PyErr_Occurred()) goto out;
    if ((o->name = name_id(core, PyTuple_GET_ITEM(g, 1))) < 0) goto out;
    o->success = PyObject_IsTrue(PyTuple_GET_ITEM(g, 2));
    if (o->success < 0) goto out;
    int has;
    if (as_opt_int(PyTuple_GET_ITEM(g, 4), &has, &o->pid) < 0 || as_opt_int(PyTuple_GET_ITEM(g, 5), &has, &o->ppid) < 0 ||
        as_opt_int(PyTuple_GET_ITEM(g, 6), &o->has_uid, &o->uid) < 0 ||
        as_opt_int(PyTuple_GET_ITEM(g, 7), &o->has_ses, &o->ses) < 0)
        goto out;
    PyObject *exe_b = PyTuple_GET_ITEM(g, 8), *tty_b = PyTuple_GET_ITEM(g, 9);
    if ((exe_b != Py_None && !PyBytes_Check(exe_b)) || (tty_b != Py_None && !PyBytes_Check(tty_b))) {
        PyErr_SetString(PyExc_TypeError, "generic_syscall: exe and tty must be bytes or None");
        goto out;
    }
    if (exe_b != Py_None) {
        if (decode_exe(core, PyBytes_AS_STRING(exe_b), (size_t)PyBytes_GET_SIZE(exe_b), exe_b, &o->exe) < 0) goto out;
    }
    if (tty_b != Py_None) o->tty_b = Py_NewRef(tty_b);
    rc = 1;
out:
    Py_XDECREF(line);
    Py_XDECREF(off);
    Py_XDECREF(g);
    return rc;
}

static Table *table_for(Core *core, const ic_event *ev) {
    if (!ev->nodelen) return core->main;
    PyObject *node = PyBytes_FromStringAndSize(ev->key, (Py_ssize_t)ev->nodelen);
    if (!node) return NULL;
    PyObject *idx = PyDict_GetItemWithError(core->node_index, node);
    Table *t = NULL;
    if (idx) {
        t = core->nodes[PyLong_AsSsize_t(idx)];
    } else if (!PyErr_Occurred()) {
        PyObject *host = utf8(ev->key, ev->nodelen);
        if (host) {
            if (core->nnodes == core->capnodes) {
                size_t cap = core->capnodes ? core->capnodes * 2 : 4;
                Table **n = PyMem_Realloc(core->nodes, cap * sizeof *n);
                if (n) {
                    core->nodes = n;
                    core->capnodes = cap;
                } else {
                    PyErr_NoMemory();
                }
            }
            if (core->nnodes < core->capnodes) {
                t = table_create(host, NULL, core->max_procs);
                PyObject *i = t ? PyLong_FromSize_t(core->nnodes) : NULL;
                if (i && PyDict_SetItem(core->node_index, node, i) == 0) {
                    core->nodes[core->nnodes++] = t;
                } else {
                    table_free(t);
                    t = NULL;
                }
                Py_XDECREF(i);
            }
            Py_DECREF(host);
        }
    }
    Py_DECREF(node);
    return t;
}

static int set(PyObject *d, PyObject *k, PyObject *v) { return PyDict_SetItem(d, k, v ? v : Py_None); }

static int set_new(PyObject *d, PyObject *k, PyObject *v) { /* steals v */
    if (!v) return -1;
    int r = PyDict_SetItem(d, k, v);
    Py_DECREF(v);
    return r;
}

static PyObject *list1(PyObject *v) {
    PyObject *l = PyList_New(1);
    if (l) PyList_SET_ITEM(l, 0, Py_NewRef(v));
    return l;
}

/* A new EcsEvent (built without its __init__) with the first fields of every event: category, type,
 * action, host */
static PyObject *new_event(Core *core, PyObject *cat, PyObject *type, PyObject *action, PyObject *host_id) {
    PyObject *d = new_instance(core->ecs_type);
    if (!d) return NULL;
    if (set_new(d, k_category, list1(cat)) < 0 || set_new(d, k_type, list1(type)) < 0 ||
        set(d, k_action, action) < 0 || set(d, k_host_id, host_id) < 0 || set(d, k_os_type, v_linux) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* Normalizer._event: the process and parent block, then the EcsEvent's slots.  Takes `d` (the event), returns
 * it, or NULL (and `d` released) on error. */
static PyObject *finish_event(Core *core, const ic_event *ev, uint64_t seq, int name, int has_exe, PyObject *d,
                              PyObject *host_name, Proc *p, Proc *parent, PyObject *args, int cwd) {
    PyObject *parent_args = NULL, *filler = NULL, *record = NULL, *ts = NULL, *sq = NULL;
    int ok = 0;
    if (set_new(d, k_pid, PyLong_FromLongLong(p->pid)) < 0) goto out;
    if (has_exe && (set(d, k_executable, p->executable) < 0 || set(d, k_name, p->name) < 0)) goto out;
    if (cwd && set(d, k_cwd, p->cwd) < 0) goto out;
    if (parent) {
        if (set_new(d, k_ppid, PyLong_FromLongLong(parent->pid)) < 0) goto out;
        if (parent->executable && PyUnicode_GET_LENGTH(parent->executable) > 0 &&
            (set(d, k_pexecutable, parent->executable) < 0 || set(d, k_pname, parent->name) < 0))
            goto out;
        parent_args = parent->args;
    }
    Proc *lead = p->leader;
    if (lead) {
        if (set_new(d, k_lpid, PyLong_FromLongLong(lead->pid)) < 0) goto out;
        if (lead->executable && PyUnicode_GET_LENGTH(lead->executable) > 0 &&
            (set(d, k_lexecutable, lead->executable) < 0 || set(d, k_lname, lead->name) < 0))
            goto out;
        if (p->leader_type && PyUnicode_GET_LENGTH(p->leader_type) > 0 && set(d, k_ltype, p->leader_type) < 0)
            goto out;
    }
    /* partial(_fill_output, record, serial, name, host_name, p) */
    PyObject *line = rec_bytes(&ev->syscall), *body = PyLong_FromSize_t(ev->syscall.body);
    if (line && body) record = PyTuple_Pack(2, line, body);
    Py_XDECREF(line);
    Py_XDECREF(body);
    if (!record) goto out;
    PyObject *serial = PyLong_FromLongLong(ev->serial);
    if (!serial) goto out;
    PyObject *fargs[6] = {core->fill_output, record, serial, name ? core->names[name] : Py_None, host_name,
                          (PyObject *)p};
    filler = PyObject_Vectorcall(core->partial, fargs, 6, NULL);
    Py_DECREF(serial);
    if (!filler) goto out;
    ts = PyLong_FromLongLong(ev->ts_ms);
    sq = PyLong_FromUnsignedLongLong(seq);
    ok = ts && sq && set_slot(core->d_ts_ms, d, ts) == 0 && set_slot(core->d_seq, d, sq) == 0 &&
         set_slot(core->d_args, d, args) == 0 && set_slot(core->d_parent_args, d, parent_args) == 0 &&
         set_slot(core->d_filler, d, filler) == 0 && set_slot(core->d_output_keys, d, core->output_keys) == 0 &&
         set_slot(core->d_proc, d, (PyObject *)p) == 0 && set_slot(core->d_parent, d, (PyObject *)parent) == 0;
out:
    Py_XDECREF(ts);
    Py_XDECREF(sq);
    Py_XDECREF(record);
    Py_XDECREF(filler);
    if (!ok) Py_CLEAR(d);
    return d;
}

/* LazyArgs(decode, records) */
static PyObject *lazy_args(Core *core, PyObject *decode, PyObject *records) {
    PyObject *la = new_instance(core->lazyargs_type);
    if (!la) return NULL;
    PyObject *argv = PyList_New(0);
    if (!argv || set_slot(core->d_decode, la, decode) < 0 || set_slot(core->d_source, la, records) < 0 ||
        set_slot(core->d_argv, la, argv) < 0 || set_slot(core->d_truncated, la, Py_False) < 0) {
        Py_XDECREF(argv);
        Py_DECREF(la);
        return NULL;
    }
    Py_DECREF(argv);
    return la;
}

/* Normalizer._exec */
static PyObject *build_exec(Core *core, const ic_event *ev, uint64_t seq, Parsed *s, Table *t) {
    PyObject *records = NULL, *args = NULL, *table_args = NULL, *cwd = NULL, *tty = NULL, *d = NULL, *r = NULL;
    core->n_exec++;
    if (ev->nexecve) {
        records = PyList_New((Py_ssize_t)ev->nexecve);
        if (!records) goto out;
        for (size_t i = 0; i < ev->nexecve; i++) {
            PyObject *line = rec_bytes(&ev->execve[i]), *body = PyLong_FromSize_t(ev->execve[i].body), *tup = NULL;
            if (line && body) tup = PyTuple_Pack(2, line, body);
            Py_XDECREF(line);
            Py_XDECREF(body);
            if (!tup) goto out;
            PyList_SET_ITEM(records, (Py_ssize_t)i, tup);
        }
        args = lazy_args(core, ev->execve_cut ? core->rebuild_cut : g_argv_fast, records);
        if (!args) goto out;
        if (ev->execve_bytes > TABLE_ARGV_BYTES) {
            /* the process table keeps a process's argv for its later events and its children's: cap it */
            if (!(table_args = PyObject_CallOneArg(core->table_argv, records))) goto out;
        } else {
            table_args = Py_NewRef(args);
        }
    }
    /* events.parse: the tty and the working directory of a successful exec */
    if (s->tty_b) {
        tty = PyUnicode_DecodeASCII(PyBytes_AS_STRING(s->tty_b), PyBytes_GET_SIZE(s->tty_b), "replace");
        if (!tty) goto out;
    } else if (s->tty.p) {
        if (!(tty = PyUnicode_DecodeASCII(s->tty.p, (Py_ssize_t)s->tty.n, "replace"))) goto out;
    }
    if (ev->cwd.line) {
        ic_span v;
        if (ic_cwd(&ev->cwd, &v) == IC_FAST) {
            if (!(cwd = utf8(v.p, v.n))) goto out;
            if (str_eq(cwd, v_too_long) || str_eq(cwd, v_no_memory)) Py_CLEAR(cwd);
        } else {
            PyObject *line = rec_bytes(&ev->cwd), *off = PyLong_FromSize_t(ev->cwd.body);
            if (line && off) {
                PyObject *a[2] = {line, off};
                cwd = PyObject_Vectorcall(core->cwd_slow, a, 2, NULL);
            }
            Py_XDECREF(line);
            Py_XDECREF(off);
            if (!cwd) goto out;
            if (cwd == Py_None) Py_CLEAR(cwd);
        }
    }
    Proc *parent = table_parent(core, t, s->ppid, ev->ts_ms);
    if (!parent) goto out;
    Py_INCREF(parent); /* the exec below may drop it from the table */
    Proc *p = table_exec(core, t, s->pid, s->ppid, s->exe, table_args, cwd, ev->ts_ms, s->has_uid, s->uid,
                         s->has_ses, s->ses, tty, parent);
    if (p) {
        Py_INCREF(p);
        PyObject *host_id = t == core->main ? core->host_id : t->host_id;
        PyObject *host_name = t == core->main ? core->host_name : t->host_id;
        d = new_event(core, v_process, v_start, v_exec, host_id);
        if (d) {
            int has_exe = s->exe && PyUnicode_GET_LENGTH(s->exe) > 0;
            r = finish_event(core, ev, seq, s->name, has_exe, d, host_name, p, parent, args, cwd != NULL);
        }
        Py_DECREF(p);
    }
    Py_DECREF(parent);
out:
    Py_XDECREF(records);
    Py_XDECREF(args);
    Py_XDECREF(table_args);
    Py_XDECREF(cwd);
    Py_XDECREF(tty);
    return r;
}

/* Normalizer._network (ip, address: str; port: int or NULL) */
static PyObject *build_network(Core *core, const ic_event *ev, uint64_t seq, Parsed *s, Table *t, Proc *proc,
                               PyObject *ip, PyObject *address, PyObject *port, int v6) {
    core->n_network++;
    int accepted = s->name != N_CONNECT;
    PyObject *host_id = t == core->main ? core->host_id : t->host_id;
    PyObject *host_name = t == core->main ? core->host_name : t->host_id;
    PyObject *d = new_event(core, v_network, v_start, accepted ? v_accepted : v_attempted, host_id);
    if (!d) return NULL;
    if (set(d, accepted ? k_src_ip : k_dst_ip, ip) < 0 || set(d, k_network_type, v6 ? v_ipv6 : v_ipv4) < 0) goto fail;
    int same = PyObject_RichCompareBool(address, ip, Py_EQ);
    if (same < 0) goto fail;
    if (!same && set(d, accepted ? k_src_address : k_dst_address, address) < 0) goto fail;
    if (port && set(d, accepted ? k_src_port : k_dst_port, port) < 0) goto fail;
    int err = 0;
    Proc *parent = table_parent_of(core, t, proc, ev->ts_ms, &err);
    if (err) goto fail;
    Py_XINCREF(parent);
    PyObject *r = finish_event(core, ev, seq, s->name, s->exe && PyUnicode_GET_LENGTH(s->exe) > 0, d, host_name, proc,
                               parent, proc->args, proc->cwd && proc->exec_seen);
    Py_XDECREF(parent);
    return r;
fail:
    Py_DECREF(d);
    return NULL;
}

/* Normalizer._uring */
static PyObject *build_uring(Core *core, const ic_event *ev, uint64_t seq, Parsed *s, Table *t, Proc *proc) {
    PyObject *host_id = t == core->main ? core->host_id : t->host_id;
    PyObject *host_name = t == core->main ? core->host_name : t->host_id;
    PyObject *d = new_event(core, v_process, v_info, v_io_uring_setup, host_id);
    if (!d) return NULL;
    int err = 0;
    Proc *parent = table_parent_of(core, t, proc, ev->ts_ms, &err);
    if (err) {
        Py_DECREF(d);
        return NULL;
    }
    Py_XINCREF(parent);
    PyObject *r = finish_event(core, ev, seq, s->name, s->exe && PyUnicode_GET_LENGTH(s->exe) > 0, d, host_name, proc,
                               parent, proc->args, proc->cwd && proc->exec_seen);
    Py_XDECREF(parent);
    return r;
}

/* The connect's address (events.parse's sockaddr, decode_sockaddr): 1 with an inet/inet6 address, 0 none. */
static int socket_address(Core *core, const ic_event *ev, int little, PyObject **ip, PyObject **address,
                          PyObject **port, int *v6) {
    unsigned char *raw;
    size_t n;
    *ip = *address = *port = NULL;
    *v6 = 0;
    int k = ic_saddr(&ev->sockaddr, &raw, &n);
    if (k < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (k == IC_NONE) return 0;
    int rc = 0;
    if (n < 2) goto out;
    unsigned family = little ? (unsigned)(raw[0] | raw[1] << 8) : (unsigned)(raw[0] << 8 | raw[1]);
    if (family == 2) { /* AF_INET */
        if (n < 8) goto out;
        *ip = PyUnicode_FromFormat("%u.%u.%u.%u", raw[4], raw[5], raw[6], raw[7]);
        *port = PyLong_FromLong((long)(raw[2] << 8 | raw[3]));
        if (!*ip || !*port) {
            Py_CLEAR(*ip);
            Py_CLEAR(*port);
            rc = -1;
            goto out;
        }
        *address = Py_NewRef(*ip);
        rc = 1;
    } else if (family == 10) { /* AF_INET6: the reference formats it (ipaddress) */
        PyObject *b = PyBytes_FromStringAndSize((const char *)raw, (Py_ssize_t)n), *sa = NULL;
        if (b) {
            PyObject *a[2] = {b, little ? Py_True : Py_False};
            sa = PyObject_Vectorcall(core->decode_sockaddr, a, 2, NULL);
            Py_DECREF(b);
        }
        if (!sa) {
            rc = -1;
            goto out;
        }
        if (sa != Py_None) {
            *ip = PyObject_GetAttr(sa, s_ip);
            *address = *ip ? PyObject_GetAttr(sa, s_address) : NULL;
            *port = *address ? PyObject_GetAttr(sa, s_port) : NULL;
            if (!*port) {
                Py_CLEAR(*ip);
                Py_CLEAR(*address);
                rc = -1;
            } else if (*ip == Py_None) {
                Py_CLEAR(*ip);
                Py_CLEAR(*address);
                Py_CLEAR(*port);
            } else {
                if (*port == Py_None) Py_CLEAR(*port);
                *v6 = 1;
                rc = 1;
            }
        }
        Py_DECREF(sa);
    }
out:
    ic_free(raw);
    return rc;
}

/* Normalizer.normalize, then the pipeline's emit: the release callback of core.c */
static int on_release(void *ctx, ic_event *ev, uint64_t seq) {
    Core *core = ctx;
    Parsed s;
    PyObject *ecs = NULL;
    if (!ev->syscall.line) return 0;
    int k = parse_event(core, ev, &s);
    if (k <= 0) goto done;
    k = -1;
    if (core->has_self_pid && (s.pid == core->self_pid || s.ppid == core->self_pid)) {
        k = 0;
        goto done;
    }
    Table *t = table_for(core, ev);
    if (!t) goto done;
    if ((s.name == N_EXECVE || s.name == N_EXECVEAT) && s.success) {
        ecs = build_exec(core, ev, seq, &s, t);
        k = ecs ? 1 : -1;
        goto done;
    }
    Proc *proc = table_observe(core, t, s.pid, s.ppid, s.exe, ev->ts_ms, s.has_uid, s.uid, s.has_ses, s.ses);
    if (!proc) goto done;
    Py_INCREF(proc);
    k = 0;
    if (s.name == N_CONNECT || s.name == N_ACCEPT || s.name == N_ACCEPT4) {
        if (ev->sockaddr.line) {
            PyObject *ip, *address, *port;
            int v6;
            int a = socket_address(core, ev, s.little, &ip, &address, &port, &v6);
            if (a < 0) {
                k = -1;
            } else if (a > 0) {
                ecs = build_network(core, ev, seq, &s, t, proc, ip, address, port, v6);
                k = ecs ? 1 : -1;
                Py_DECREF(ip);
                Py_DECREF(address);
                Py_XDECREF(port);
            }
        }
    } else if (s.name == N_IO_URING_SETUP) {
        ecs = build_uring(core, ev, seq, &s, t, proc);
        k = ecs ? 1 : -1;
    }
    Py_DECREF(proc);
done:
    Py_XDECREF(s.exe);
    Py_XDECREF(s.tty_b);
    if (k < 0) return -1;
    if (!ecs) return 0;
    PyObject *res = PyObject_CallOneArg(core->emit, ecs);
    Py_DECREF(ecs);
    if (!res) return -1;
    Py_DECREF(res);
    return 0;
}

/* _core.rebuild_argv(records): execve.rebuild_argv, the usual single record decoded here, any other form by
 * the reference.  Returns (argv, truncated) like it. */
static PyObject *argv_of(PyObject *mod, PyObject *records) {
    (void)mod;
    if (PyList_Check(records) && PyList_GET_SIZE(records) == 1) {
        PyObject *raw = PyList_GET_ITEM(records, 0);
        if (PyTuple_Check(raw) && PyTuple_GET_SIZE(raw) == 2 && PyBytes_Check(PyTuple_GET_ITEM(raw, 0)) &&
            PyLong_Check(PyTuple_GET_ITEM(raw, 1))) {
            PyObject *line = PyTuple_GET_ITEM(raw, 0);
            Py_ssize_t body = PyLong_AsSsize_t(PyTuple_GET_ITEM(raw, 1));
            if (body == -1 && PyErr_Occurred()) return NULL;
            if (body >= 0 && body <= PyBytes_GET_SIZE(line)) {
                ic_rec r = {PyBytes_AS_STRING(line), (size_t)PyBytes_GET_SIZE(line), (size_t)body};
                ic_arg *args;
                long n = ic_argv_single(&r, &args);
                if (n == -2) return PyErr_NoMemory();
                if (n >= 0) {
                    PyObject *argv = PyList_New(n);
                    for (long i = 0; argv && i < n; i++) {
                        PyObject *a;
                        if (args[i].kind == IC_ARG_HEX) {
                            size_t m = args[i].v.n / 2;
                            char *b = PyMem_Malloc(m ? m : 1);
                            a = b && ic_unhex(args[i].v, b) == 0 ? utf8(b, m) : NULL;
                            if (!b) PyErr_NoMemory();
                            PyMem_Free(b);
                        } else {
                            a = utf8(args[i].v.p, args[i].v.n);
                        }
                        if (!a) {
                            Py_CLEAR(argv);
                            break;
                        }
                        PyList_SET_ITEM(argv, i, a);
                    }
                    ic_free(args);
                    if (!argv) return NULL;
                    PyObject *r2 = PyTuple_Pack(2, argv, Py_False);
                    Py_DECREF(argv);
                    return r2;
                }
            }
        }
    }
    if (!g_argv_reference) {
        PyErr_SetString(PyExc_RuntimeError, "rebuild_argv: no Core was made (the reference is unknown)");
        return NULL;
    }
    return PyObject_CallOneArg(g_argv_reference, records);
}

/* ---- the Core type's Python interface ----------------------------------------------------------------- */

static int check(Core *self) {
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Core is not initialized");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Core called again from its own emit callback");
        return -1;
    }
    return 0;
}

static PyObject *after(int rc) {
    if (rc < 0) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *core_feed(Core *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check(self) < 0) return NULL;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "feed(data, now)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *data = args[0];
    if (PyBytes_Check(data)) {
        self->busy = 1;
        int rc = ic_feed_buffer(&self->c, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), now);
        self->busy = 0;
        return after(rc);
    }
    if (!PyList_Check(data)) {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            PyErr_SetString(PyExc_TypeError, "feed() takes a buffer of lines separated by b'\\n' or a list of lines");
            return NULL;
        }
        self->busy = 1;
        int rc = ic_feed_buffer(&self->c, view.buf, (size_t)view.len, now);
        self->busy = 0;
        PyBuffer_Release(&view);
        return after(rc);
    }
    /* a list of lines: hold it, a callback could change it */
    Py_INCREF(data);
    int rc = 0;
    self->busy = 1;
    Py_ssize_t n = PyList_GET_SIZE(data);
    for (Py_ssize_t i = 0; i < n && i < PyList_GET_SIZE(data); i++) {
        PyObject *line = PyList_GET_ITEM(data, i);
        if (!PyBytes_Check(line)) {
            PyErr_SetString(PyExc_TypeError, "feed(): every line must be bytes");
            rc = -1;
            break;
        }
        Py_INCREF(line);
        rc = ic_feed_line(&self->c, PyBytes_AS_STRING(line), (size_t)PyBytes_GET_SIZE(line), now);
        Py_DECREF(line);
        if (rc < 0) break;
    }
    self->busy = 0;
    if (rc == 0) self->c.lines += (uint64_t)n;
    Py_DECREF(data);
    return after(rc);
}

static PyObject *core_expire(Core *self, PyObject *now_o) {
    if (check(self) < 0) return NULL;
    double now = PyFloat_AsDouble(now_o);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    self->busy = 1;
    int rc = ic_expire(&self->c, now);
    self->busy = 0;
    return after(rc);
}

static PyObject *core_flush(Core *self, PyObject *unused) {
    (void)unused;
    if (check(self) < 0) return NULL;
    self->busy = 1;
    int rc = ic_flush(&self->c);
    self->busy = 0;
    return after(rc);
}

static PyObject *core_release_all(Core *self, PyObject *unused) {
    (void)unused;
    if (check(self) < 0) return NULL;
    self->busy = 1;
    int rc = ic_release_all(&self->c);
    self->busy = 0;
    return after(rc);
}

static PyObject *core_process(Core *self, PyObject *pid_o) {
    if (check(self) < 0) return NULL;
    long long pid = PyLong_AsLongLong(pid_o);
    if (pid == -1 && PyErr_Occurred()) return NULL;
    return opt((PyObject *)table_get(self->main, pid));
}

static PyObject *u64(uint64_t v) { return PyLong_FromUnsignedLongLong(v); }

static PyObject *core_counters(Core *self, PyObject *unused) {
    (void)unused;
    if (check(self) < 0) return NULL;
    const ic_core *c = &self->c;
    return Py_BuildValue(
        "{s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "lines", u64(c->lines), "malformed",
        u64(c->malformed), "records", u64(c->records), "events", u64(c->stats.events), "evicted",
        u64(c->stats.evicted), "timed_out", u64(c->stats.timed_out), "late_records", u64(c->stats.late_records),
        "bad_ids", u64(c->stats.bad_ids), "execve_dropped", u64(c->stats.execve_dropped), "late_events",
        u64(c->late), "exec", u64(self->n_exec), "network", u64(self->n_network), "processes",
        u64(self->main->n), "pid_reuse", u64(self->main->pid_reuse), "dropped", u64(self->main->dropped));
}

static PyObject *core_get_pending(Core *self, void *c) {
    (void)c;
    return self->ready ? PyLong_FromSize_t(ic_pending(&self->c)) : PyLong_FromLong(0);
}
static PyObject *core_get_frontier(Core *self, void *c) {
    (void)c;
    return PyLong_FromLongLong(self->ready ? self->c.frontier : -1);
}
static PyObject *core_get_nodes(Core *self, void *c) {
    (void)c;
    return PyLong_FromSize_t(self->nnodes);
}
static PyObject *core_get_processes(Core *self, void *c) {
    (void)c;
    return PyLong_FromSize_t(self->ready ? self->main->n : 0);
}

/* ---- construction ------------------------------------------------------------------------------------ */

#define CORE_VISIT1(f) Py_VISIT(self->f);
#define CORE_VISIT2(f, name) Py_VISIT(self->f);
#define CORE_VISIT3(f, type, name) Py_VISIT(self->f);
#define CORE_CLEAR1(f) Py_CLEAR(self->f);
#define CORE_CLEAR2(f, name) Py_CLEAR(self->f);
#define CORE_CLEAR3(f, type, name) Py_CLEAR(self->f);

static int core_traverse(Core *self, visitproc visit, void *arg) {
    CORE_OWN(CORE_VISIT1)
    CORE_HELPERS(CORE_VISIT2)
    CORE_DESCRS(CORE_VISIT3)
    for (int i = 0; i < N_COUNT; i++) Py_VISIT(self->names[i]);
    if (table_traverse(self->main, visit, arg)) return -1;
    for (size_t i = 0; i < self->nnodes; i++)
        if (table_traverse(self->nodes[i], visit, arg)) return -1;
    return 0;
}

static int core_clear(Core *self) {
    if (self->ready) {
        ic_destroy(&self->c);
        self->ready = 0;
    }
    table_free(self->main);
    self->main = NULL;
    for (size_t i = 0; i < self->nnodes; i++) table_free(self->nodes[i]);
    PyMem_Free(self->nodes);
    self->nodes = NULL;
    self->nnodes = self->capnodes = 0;
    PyMem_Free(self->sc);
    self->sc = NULL;
    self->nsc = 0;
    CORE_OWN(CORE_CLEAR1)
    CORE_HELPERS(CORE_CLEAR2)
    CORE_DESCRS(CORE_CLEAR3)
    for (int i = 0; i < N_COUNT; i++) Py_CLEAR(self->names[i]);
    return 0;
}

static void core_dealloc(Core *self) {
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *member_descr(PyObject *type, const char *name) {
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d && !Py_TYPE(d)->tp_descr_set) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", ((PyTypeObject *)type)->tp_name, name);
        Py_CLEAR(d);
    }
    return d;
}

static PyObject *helper(PyObject *h, const char *name) {
    PyObject *o = PyObject_GetAttrString(h, name);
    if (!o) PyErr_Format(PyExc_TypeError, "the helpers lack %s", name);
    return o;
}

/* Core(emit, helpers, host_id, host_name, *, resolver, self_pid, reorder_ms, max_in_flight, log_timeout,
 *      wall_timeout, max_procs, done_memory, max_held, seed) */
static int core_init(Core *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"emit", "helpers", "host_id", "host_name", "resolver", "self_pid", "reorder_ms",
                             "max_in_flight", "log_timeout", "wall_timeout", "max_procs", "done_memory",
                             "max_held", "seed", NULL};
    PyObject *emit, *h, *host_id, *host_name, *resolver = Py_None, *self_pid = Py_None;
    long long reorder_ms = 2000, log_timeout = 2, seed0 = 0, seed1 = 0;
    Py_ssize_t max_in_flight = 4096, max_procs = 16384, done_memory = 16384, max_held = 5000;
    double wall_timeout = 2.0;
    PyObject *seed = NULL;
    if (self->ready || self->main) {
        PyErr_SetString(PyExc_RuntimeError, "Core.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOUU|$OOLnLdnnnO", kwlist, &emit, &h, &host_id, &host_name, &resolver,
                                     &self_pid, &reorder_ms, &max_in_flight, &log_timeout, &wall_timeout, &max_procs,
                                     &done_memory, &max_held, &seed))
        return -1;
    if (max_in_flight < 1 || max_procs < 1 || done_memory < 1 || max_held < 1) {
        PyErr_SetString(PyExc_ValueError, "max_in_flight, max_procs, done_memory and max_held must be >= 1");
        return -1;
    }
    if (seed && seed != Py_None && !PyArg_ParseTuple(seed, "LL", &seed0, &seed1)) return -1;
    self->emit = Py_NewRef(emit);
    self->host_id = Py_NewRef(host_id);
    self->host_name = Py_NewRef(host_name);
    if (self_pid != Py_None) {
        self->self_pid = PyLong_AsLongLong(self_pid);
        if (self->self_pid == -1 && PyErr_Occurred()) return -1;
        self->has_self_pid = 1;
    }
    self->max_procs = (size_t)max_procs;
#define HELPER(field, name)                                                                                    \
    if (!(self->field = helper(h, name))) return -1;
    CORE_HELPERS(HELPER)
#undef HELPER
    Py_INCREF(self->rebuild_argv);
    Py_XSETREF(g_argv_reference, self->rebuild_argv);
    if (!PyType_Check(self->ecs_type) || !PyType_Check(self->lazyargs_type) || !PyAnySet_Check(self->runtimes)) {
        PyErr_SetString(PyExc_TypeError, "EcsEvent and LazyArgs must be types, CONTAINER_RUNTIMES a set");
        return -1;
    }
#define DESCR(field, type, name)                                                                               \
    if (!(self->field = member_descr(self->type, name))) return -1;
    CORE_DESCRS(DESCR)
#undef DESCR
    for (int i = 1; i < N_COUNT; i++)
        if (!(self->names[i] = PyUnicode_InternFromString(NAME_TEXT[i]))) return -1;
    /* the syscall tables: SYSCALLS {arch: {nr: name}} and SOCKETCALL_CALLS {call: name} */
    PyObject *tables = helper(h, "SYSCALLS"), *calls = helper(h, "SOCKETCALL_CALLS");
    int ok = tables && calls && PyDict_Check(tables) && PyDict_Check(calls);
    if (ok) {
        Py_ssize_t pos = 0, total = 0;
        PyObject *arch, *table;
        while (PyDict_Next(tables, &pos, &arch, &table)) total += PyDict_Check(table) ? PyDict_GET_SIZE(table) : 0;
        self->sc = PyMem_Calloc((size_t)total + 1, sizeof *self->sc);
        ok = self->sc != NULL;
        pos = 0;
        while (ok && PyDict_Next(tables, &pos, &arch, &table)) {
            Py_ssize_t p2 = 0;
            PyObject *nr, *name;
            uint64_t a = PyLong_AsUnsignedLongLong(arch);
            if (PyErr_Occurred() || !PyDict_Check(table)) ok = 0;
            while (ok && PyDict_Next(table, &p2, &nr, &name)) {
                SyscallEntry *e = &self->sc[self->nsc++];
                e->arch = a;
                e->nr = PyLong_AsLongLong(nr);
                e->name = name_id(self, name);
                if (PyErr_Occurred() || e->name < 0) ok = 0;
            }
        }
        pos = 0;
        PyObject *call, *name;
        while (ok && PyDict_Next(calls, &pos, &call, &name)) {
            if (self->nsockcall == 8) {
                ok = 0;
                PyErr_SetString(PyExc_ValueError, "too many socketcall calls");
                break;
            }
            self->sockcall_nr[self->nsockcall] = PyLong_AsLongLong(call);
            self->sockcall_name[self->nsockcall] = name_id(self, name);
            if (PyErr_Occurred() || self->sockcall_name[self->nsockcall] < 0) ok = 0;
            self->nsockcall++;
        }
    }
    Py_XDECREF(tables);
    Py_XDECREF(calls);
    if (!ok) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "SYSCALLS and SOCKETCALL_CALLS must be dicts");
        return -1;
    }
    if (!(self->node_index = PyDict_New())) return -1;
    if (!(self->main = table_create(host_id, resolver == Py_None ? NULL : resolver, (size_t)max_procs))) return -1;
    uint64_t s[2] = {(uint64_t)seed0, (uint64_t)seed1};
    if (ic_init(&self->c, (size_t)max_in_flight, log_timeout, wall_timeout, (size_t)done_memory, reorder_ms,
                (size_t)max_held, s, on_release, self) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    self->ready = 1;
    return 0;
}

static PyMethodDef core_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))core_feed, METH_FASTCALL,
     "feed(data, now): lines (bytes separated by b'\\n', or a list of bytes lines); events go to emit"},
    {"expire", (PyCFunction)core_expire, METH_O, "expire(now): complete events with no record for wall_timeout"},
    {"flush", (PyCFunction)core_flush, METH_NOARGS, "complete every event still open"},
    {"release_all", (PyCFunction)core_release_all, METH_NOARGS, "release every event held for ordering"},
    {"process", (PyCFunction)core_process, METH_O, "process(pid): the main table's Proc of pid, or None"},
    {"counters", (PyCFunction)core_counters, METH_NOARGS, "the counters, as a dict"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef core_getset[] = {
    {"pending", (getter)core_get_pending, NULL, "events held by reassembly or ordering", NULL},
    {"frontier", (getter)core_get_frontier, NULL, "time (ms) of the newest event released, -1 before", NULL},
    {"node_tables", (getter)core_get_nodes, NULL, "number of node= hosts seen", NULL},
    {"processes", (getter)core_get_processes, NULL, "processes in the main table", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "auditimds._core.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "audit.log lines in, ECS events out (see auditimds/core.py)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_methods = core_methods,
    .tp_getset = core_getset,
};

static PyMethodDef module_methods[] = {
    {"rebuild_argv", (PyCFunction)argv_of, METH_O,
     "rebuild_argv(records) -> (argv, truncated): audit/execve.rebuild_argv, its usual form in C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "auditimds._core", "The compiled per-line hot path (see auditimds/core.py).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (init_strings() < 0) return NULL;
    /* Python's raw allocator: thread-safe like malloc, and seen by tracemalloc */
    ic_set_allocator(PyMem_RawMalloc, PyMem_RawCalloc, PyMem_RawRealloc, PyMem_RawFree);
    if (PyType_Ready(&ProcType) < 0 || PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (!(g_argv_fast = PyObject_GetAttrString(m, "rebuild_argv"))) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&CoreType);
    Py_INCREF(&ProcType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObject(m, "Proc", (PyObject *)&ProcType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
