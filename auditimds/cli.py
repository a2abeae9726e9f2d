"""Command line: `auditimds scan|events ...`.

Errors are one line on stderr and exit code 2, never a traceback.  `scan` writes only alerts to stdout
(JSON lines) and a summary to stderr; `events` writes the ECS events themselves.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import __version__
from .rules.builtin import builtin_rules_dir

log = logging.getLogger("auditimds")

EXIT_OK = 0
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad usage or unusable input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- host identity ----------------------------------------------------------------------------------------


def machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            v = Path(p).read_text().strip()
        except OSError:
            continue
        if v:
            return v
    return socket.gethostname()


def host_identity(args: argparse.Namespace) -> "tuple[str, str]":
    return (args.host_id or machine_id(), args.host_name or socket.gethostname())


# -- rules ------------------------------------------------------------------------------------------------


def shipped_packs() -> List[str]:
    d = builtin_rules_dir()
    return sorted(x.name for x in d.iterdir() if x.is_dir() and not x.name.startswith(("_", "."))) if d.is_dir() else []


def load_rule_set(extra: Sequence[str], builtin: bool, allow_none: bool = False, lazy_first: bool = True) -> List[Any]:
    from .rules.loader import load_rules

    paths: List[Path] = []
    if builtin:
        paths.append(builtin_rules_dir())
    for p in extra:
        pp = Path(p)
        if not pp.exists():
            shipped = builtin_rules_dir() / p  # a pack shipped with auditimds, by name: --rules hardened
            if "/" not in p and shipped.is_dir():
                pp = shipped
            else:
                packs = ", ".join(shipped_packs())
                raise UsageError(f"--rules {p}: no such file or directory (shipped packs: {packs})")
        paths.append(pp)
    rules, errors = load_rules(paths, lazy_first=lazy_first)
    for err in errors:
        print(f"auditimds: warning: rule skipped: {err}", file=sys.stderr)
    if not rules:
        if allow_none and not paths:
            print("auditimds: no rules: counting events only", file=sys.stderr)
            return []
        raise UsageError("no rules loaded (built-in rules disabled and no --rules given, or all refused)")
    return rules


# -- progress ---------------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, total: int, label: str) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.label = label
        self.enabled = stream.isatty()
        self._last = 0.0

    def update(self, done: int, alerts: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label[-40:]:<40} [{bar:<30}] {frac * 100:5.1f}%  alerts: {alerts}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


# -- commands ---------------------------------------------------------------------------------------------


def _run_files(args: argparse.Namespace, on_alert: Any, on_event: Any, rules: List[Any]) -> Dict[str, Any]:
    from .pipeline import Pipeline
    from .source.reader import LogOpenError, file_size, open_log, raw_position, read_batches

    host_id, host_name = host_identity(args)
    pipe = Pipeline(rules, host_id, host_name, on_alert=on_alert, on_event=on_event,
                    reorder_ms=args.reorder_ms)
    # Open every file first so that a typo in the last name fails before any output.
    handles = []
    for name in args.files:
        try:
            handles.append((name, open_log(name)))
        except LogOpenError as e:
            for _, h in handles:
                h.close()
            raise UsageError(str(e)) from None
    t0 = time.perf_counter()
    now = time.time()
    for name, f in handles:
        progress = Progress(sys.stderr, file_size(f), os.path.basename(name))
        try:
            for batch in read_batches(f):
                pipe.feed(batch, now)
                progress.update(raw_position(f), pipe.counters.alerts)
        except LogOpenError as e:
            progress.close()
            raise UsageError(f"{name}: {e}") from None
        finally:
            f.close()
        progress.close()
    pipe.finish()
    st = pipe.stats()
    st["seconds"] = round(time.perf_counter() - t0, 3)
    st["files"] = len(handles)
    return st


def _summary(st: Dict[str, Any], what: str) -> str:
    return (
        f"auditimds: {st['files']} file(s), {st['lines']} lines, {st['events']} events "
        f"({st['exec_events']} exec, {st['network_events']} network), {st['malformed_lines']} malformed lines, "
        f"{st['alerts']} {what}, {st['seconds']:.2f} s"
    )


def _has_node_prefix(path: str) -> bool:
    """Whether the first 64 KB of a log hold `node=` records (an aggregated, multi-host log)."""
    from .source.reader import LogOpenError, open_log

    try:
        with open_log(path) as f:
            head = f.read(1 << 16)
    except (LogOpenError, OSError, EOFError):
        return False  # reported properly when the file is read
    return head.startswith(b"node=") or b"\nnode=" in head


def cmd_scan(args: argparse.Namespace) -> int:
    from .alerts.sinks import JsonLinesSink

    # Aggregated logs (node= prefixes) come from hosts whose clocks differ: evaluate rules eagerly there, the
    # skew-tolerant way the live agent does (the lazy first stage's window follows the newest clock of all).
    lazy = not any(_has_node_prefix(f) for f in args.files)
    rules = load_rule_set(args.rules, not args.no_builtin_rules, allow_none=True, lazy_first=lazy)
    sink = JsonLinesSink(sys.stdout, flush=False)
    st = _run_files(args, sink, None, rules)
    sys.stdout.flush()
    print(_summary(st, "alerts"), file=sys.stderr)
    if args.stats_json:
        print(json.dumps(st), file=sys.stderr)
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    from .alerts.sinks import dumps

    out = sys.stdout
    write = out.write

    def on_event(ev: Any) -> None:
        write(dumps(ev.to_document()) + "\n")

    st = _run_files(args, None, on_event, [])
    out.flush()
    print(_summary(st, "alerts"), file=sys.stderr)
    return EXIT_OK


def _run_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    o: Dict[str, Any] = {
        "input_path": args.log,
        "output_jsonl": args.alerts_jsonl,
        "state_dir": args.state_dir,
        "start": args.start,
        "host_id": args.host_id,
        "host_name": args.host_name,
    }
    if args.no_builtin_rules:
        o["builtin_rules"] = False
    if args.no_stdout:
        o["output_stdout"] = False
    return o


def cmd_run(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .daemon import DaemonError, run_daemon, run_stdin

    overrides = _run_overrides(args)
    extra_rules = list(args.rules)
    try:
        cfg = load_config(args.config).with_overrides(**overrides)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if not args.verbose:
        logging.getLogger("auditimds").setLevel(cfg.log_level.upper())

    def rules_for(c: Any) -> List[Any]:
        # eager first stages: the agent holds no window of unevaluated events (memory budget)
        return load_rule_set(list(c.rule_paths) + extra_rules, c.builtin_rules, lazy_first=False)

    def host_for(c: Any) -> "tuple[str, str]":
        return (c.host_id or machine_id(), c.host_name or socket.gethostname())

    try:
        if args.stdin:
            return run_stdin(cfg, rules_for, host_for)
        return run_daemon(cfg, args.config, overrides, rules_for, host_for)
    except DaemonError as e:
        raise UsageError(str(e)) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import ConfigError, describe, load_config

    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    load_rule_set(list(cfg.rule_paths), cfg.builtin_rules)
    print("\n".join(describe(cfg)))
    print(f"auditimds: {cfg.source}: configuration OK", file=sys.stderr)
    return EXIT_OK


def _config_for_ops(args: argparse.Namespace) -> Any:
    from .config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    return cfg.with_overrides(input_path=getattr(args, "log", None), state_dir=getattr(args, "state_dir", None))


def cmd_doctor(args: argparse.Namespace) -> int:
    from .ops.doctor import doctor

    return doctor(_config_for_ops(args), sys.stdout)


def cmd_status(args: argparse.Namespace) -> int:
    from .ops.status import status

    cfg = _config_for_ops(args)
    return status(Path(cfg.state_dir), sys.stdout, json_output=args.json)


def cmd_notify_test(args: argparse.Namespace) -> int:
    from .alerts.notify import notify_test

    cfg = _config_for_ops(args)
    if not cfg.notify.enabled:
        raise UsageError(f"{cfg.source}: [notify] has no urls or config: nothing to test")
    results = notify_test(cfg.notify)
    failed = 0
    for name, ok, reason in results:
        print(f"{name}: {'ok' if ok else 'FAILED: ' + reason}")
        failed += not ok
    print(f"auditimds: {len(results) - failed} of {len(results)} channel(s) reached", file=sys.stderr)
    return 1 if failed else EXIT_OK


def cmd_rules_check(args: argparse.Namespace) -> int:
    from .rules.check import check_rules

    return check_rules(list(args.paths), sys.stdout)


# -- argument parsing ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="auditimds", description="Detect instance-metadata (IMDS) credential theft in auditd logs.")
    p.add_argument("--version", action="version", version=f"auditimds {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail on stderr")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("files", nargs="+", metavar="FILE",
                        help="audit log(s), plain or .gz, read in the order given (e.g. audit.log.1 audit.log)")
        sp.add_argument("--host-id", help="host.id for lines without node= (default: /etc/machine-id)")
        sp.add_argument("--host-name", help="host.name for lines without node= (default: this host's name)")
        sp.add_argument("--reorder-ms", type=int, default=2000, metavar="MS",
                        help="hold events this long (log time) to evaluate them in timestamp order (default 2000)")

    sc = sub.add_parser("scan", help="scan audit logs and print alerts as JSON lines")
    common(sc)
    sc.add_argument("--rules", action="append", default=[], metavar="PATH",
                    help="add a detection-rules TOML file or a directory of them (repeatable)")
    sc.add_argument("--no-builtin-rules", action="store_true", help="do not load the built-in rules")
    sc.add_argument("--stats-json", action="store_true", help="also print the statistics as JSON on stderr")
    sc.set_defaults(func=cmd_scan)

    ev = sub.add_parser("events", help="print the ECS events built from audit logs as JSON lines")
    common(ev)
    ev.set_defaults(func=cmd_events)

    rn = sub.add_parser("run", help="follow the live audit log and alert (the agent)")
    rn.add_argument("--config", metavar="FILE",
                    help="configuration file (default: /etc/auditimds/auditimds.toml if it exists)")
    rn.add_argument("--log", metavar="PATH", help="audit log to follow (default /var/log/audit/audit.log)")
    rn.add_argument("--alerts-jsonl", metavar="PATH", help="also append alerts to this JSON lines file")
    rn.add_argument("--state-dir", metavar="DIR", help="where position and emitted alerts are kept")
    rn.add_argument("--start", choices=("end", "beginning"), help="first start without state: where to begin")
    rn.add_argument("--stdin", action="store_true",
                    help="read records from standard input: the auditd plugin mode (packaging/audisp/auditimds.conf)")
    rn.add_argument("--rules", action="append", default=[], metavar="PATH",
                    help="add a detection-rules TOML file or a directory of them (repeatable)")
    rn.add_argument("--no-builtin-rules", action="store_true", help="do not load the built-in rules")
    rn.add_argument("--no-stdout", action="store_true", help="do not write alerts to standard output")
    rn.add_argument("--host-id", help="host.id for lines without node= (default: /etc/machine-id)")
    rn.add_argument("--host-name", help="host.name for lines without node= (default: this host's name)")
    rn.add_argument("-v", "--verbose", dest="verbose_run", action="store_true", help="debug messages on stderr")
    rn.set_defaults(func=cmd_run)

    dr = sub.add_parser("doctor", help="check that detection can work on this host, with the fix for each problem")
    dr.add_argument("--config", metavar="FILE", help="default: /etc/auditimds/auditimds.toml if it exists")
    dr.add_argument("--log", metavar="PATH", help="the audit log to check (default from the configuration)")
    dr.add_argument("--state-dir", metavar="DIR", help="the state dir to check (default from the configuration)")
    dr.set_defaults(func=cmd_doctor)

    stt = sub.add_parser("status", help="position, lag, counters and last alert of the running agent")
    stt.add_argument("--config", metavar="FILE", help="default: /etc/auditimds/auditimds.toml if it exists")
    stt.add_argument("--state-dir", metavar="DIR", help="default from the configuration (/var/lib/auditimds)")
    stt.add_argument("--json", action="store_true", help="machine-readable output")
    stt.set_defaults(func=cmd_status)

    nt = sub.add_parser("notify-test", help="send a sample alert to every configured notification channel")
    nt.add_argument("--config", metavar="FILE", help="default: /etc/auditimds/auditimds.toml if it exists")
    nt.set_defaults(func=cmd_notify_test)

    rl = sub.add_parser("rules", help="work with detection rules")
    rsub = rl.add_subparsers(dest="rules_command", parser_class=_Parser)
    rc = rsub.add_parser("check", help="load detection-rules TOML files; report refusals and fields auditd lacks")
    rc.add_argument("paths", nargs="+", metavar="PATH", help="rule files or directories")
    rc.set_defaults(func=cmd_rules_check)

    cc = sub.add_parser("check-config", help="validate a configuration file and print the effective configuration")
    cc.add_argument("file", nargs="?", metavar="FILE", help="default: /etc/auditimds/auditimds.toml")
    cc.set_defaults(func=cmd_check_config)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Millions of short-lived small objects and few cycles: collect the youngest generation less often
    # (about 10 % of scan time with the default threshold of 700).
    gc.set_threshold(50_000, 20, 100)
    logging.basicConfig(format="auditimds: %(levelname)s: %(message)s", level=logging.WARNING)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "verbose_run", False):
            args.verbose = True
        if args.verbose:
            logging.getLogger("auditimds").setLevel(logging.DEBUG)
        if not getattr(args, "func", None):
            if getattr(args, "command", None) == "rules":
                raise UsageError("a rules command is required: check (see 'auditimds rules --help')")
            raise UsageError("a command is required: run, scan, events, doctor, status, notify-test, rules, "
                             "check-config (see 'auditimds --help')")
        return int(args.func(args))
    except UsageError as e:
        print(f"auditimds: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `auditimds scan ... | head`: the reader went away; not an error of ours.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        print("auditimds: interrupted", file=sys.stderr)
        return 130


def run_and_exit() -> None:
    """Console entry point: run, flush, and leave without tearing down the heap.

    A scan ends with a process table and rule state of tens of thousands of small objects; letting the
    interpreter free them one by one adds a noticeable fraction of a second to every invocation.
    """
    rc = main()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass
    try:
        sys.stderr.flush()
    except (ValueError, OSError):
        pass
    os._exit(rc)


if __name__ == "__main__":
    run_and_exit()
