"""Command line: `auditimds scan|events ...`.

Errors are one line on stderr (`auditimds: error: ...`; warnings `auditimds: warning: ...`), never a
traceback: exit code 2 for bad usage or an unusable input, 1 when the output cannot be written (disk full...).
A closed output pipe (`| head -1`) ends the command quietly.  `scan` writes only alerts to stdout (JSON lines)
and a summary to stderr; `events` writes the ECS events themselves.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence, TextIO, Tuple

from . import __version__
from .cli_support import (
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    GuardedOutput,
    OutputError,
    UsageError,
    cli_rules,
    close_inputs,
    discard_stdout,
    load_rule_set,
    machine_id,
    non_negative_int,
    open_inputs,
    run_files,
    sniff_node_prefixes,
    summary_line,
)

if TYPE_CHECKING:
    from .config import Config
    from .rules.loader import Rule

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- commands ---------------------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace, out: TextIO) -> int:
    from .alerts.sinks import JsonLinesSink

    handles = open_inputs(args.files)
    try:
        # Aggregated logs (node= prefixes) come from hosts whose clocks differ: evaluate rules eagerly there,
        # the skew-tolerant way the live agent does (the lazy first stage's window follows the newest clock).
        aggregated, handles = sniff_node_prefixes(handles)
        rules = load_rule_set(cli_rules(args.rules), not args.no_builtin_rules, allow_none=True,
                              lazy_first=not aggregated)
    except BaseException:
        close_inputs(handles)
        raise
    sink = JsonLinesSink(out, flush=False)
    st = run_files(args, handles, sink, None, rules)
    out.flush()
    print(summary_line(st), file=sys.stderr)
    if args.stats_json:
        print(json.dumps(st), file=sys.stderr)
    return EXIT_OK


def cmd_events(args: argparse.Namespace, out: TextIO) -> int:
    from .alerts.sinks import dumps

    write = out.write

    def on_event(ev: Any) -> None:
        write(dumps(ev.to_document()) + "\n")

    st = run_files(args, open_inputs(args.files), None, on_event, [])
    out.flush()
    print(summary_line(st, alerts=False), file=sys.stderr)
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


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
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

    def rules_for(c: Config) -> List[Rule]:
        # eager first stages: the agent holds no window of unevaluated events (memory budget)
        sources = [("[rules] paths:", p) for p in c.rule_paths] + cli_rules(extra_rules)
        return load_rule_set(sources, c.builtin_rules, lazy_first=False,
                             none_given="no --rules given and no [rules] paths")

    def host_for(c: Config) -> Tuple[str, str]:
        return (c.host_id or machine_id(), c.host_name or socket.gethostname())

    try:
        if args.stdin:
            return run_stdin(cfg, rules_for, host_for)
        return run_daemon(cfg, args.config, overrides, rules_for, host_for)
    except DaemonError as e:
        raise UsageError(str(e)) from None


def cmd_check_config(args: argparse.Namespace, out: TextIO) -> int:
    from .config import ConfigError, describe, load_config

    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    load_rule_set([("[rules] paths:", p) for p in cfg.rule_paths], cfg.builtin_rules,
                  none_given="no [rules] paths given")
    if cfg.notify.enabled:  # what `run` would reject: URLs and apprise files apprise cannot use
        from .alerts.notify import notify_config_errors

        errors = notify_config_errors(cfg.notify)
        if errors:
            raise UsageError("; ".join(errors))
    out.write("\n".join(describe(cfg)) + "\n")
    print(f"auditimds: {cfg.source}: configuration OK", file=sys.stderr)
    return EXIT_OK


def _config_for_ops(args: argparse.Namespace) -> Config:
    from .config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    return cfg.with_overrides(input_path=getattr(args, "log", None), state_dir=getattr(args, "state_dir", None))


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from .ops.doctor import doctor

    return doctor(_config_for_ops(args), out, log_from_option=args.log is not None)


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from .ops.status import status

    cfg = _config_for_ops(args)
    return status(Path(cfg.state_dir), out, json_output=args.json)


def cmd_notify_test(args: argparse.Namespace, out: TextIO) -> int:
    from .alerts.notify import notify_test

    cfg = _config_for_ops(args)
    if not cfg.notify.enabled:
        raise UsageError(f"{cfg.source}: [notify] has no urls or config: nothing to test")
    results = notify_test(cfg.notify)
    failed = 0
    for name, ok, reason in results:
        out.write(f"{name}: {'ok' if ok else 'FAILED: ' + reason}\n")
        failed += not ok
    print(f"auditimds: {len(results) - failed} of {len(results)} channel(s) reached", file=sys.stderr)
    return 1 if failed else EXIT_OK


def cmd_rules_check(args: argparse.Namespace, out: TextIO) -> int:
    from .rules.check import check_rules

    return check_rules(list(args.paths), out, sys.stderr)


# -- argument parsing ---------------------------------------------------------------------------------------


class _VersionAction(argparse.Action):
    """`--version`: the version and which core this process runs (compiled, or pure-Python and why)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str = "show the version and the core in use, then exit",
                 ) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:  # (namespace, values, option_string)
        from .core import core_info

        name, why = core_info()
        print(f"auditimds {__version__} ({name} core{': ' + why if why else ''})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="auditimds", description="Detect instance-metadata (IMDS) credential theft in auditd logs.")
    p.add_argument("--version", action=_VersionAction)
    p.add_argument("-v", "--verbose", action="store_true", help="more detail on stderr")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("files", nargs="+", metavar="FILE",
                        help="audit log(s), plain or .gz, read in the order given (e.g. audit.log.1 audit.log); "
                             "- for standard input; pipes and FIFOs work too")
        sp.add_argument("--host-id", help="host.id for lines without node= (default: /etc/machine-id)")
        sp.add_argument("--host-name", help="host.name for lines without node= (default: this host's name)")
        sp.add_argument("--reorder-ms", type=non_negative_int, default=2000, metavar="MS",
                        help="hold events this long (log time) to evaluate them in timestamp order (default 2000)")
        sp.add_argument("-v", "--verbose", dest="verbose_sub", action="store_true", help="debug messages on stderr")

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
    rn.add_argument("-v", "--verbose", dest="verbose_sub", action="store_true", help="debug messages on stderr")
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


class _Formatter(logging.Formatter):
    """`auditimds: warning: ...`: the level in lower case, like the CLI's own messages."""

    def format(self, record: logging.LogRecord) -> str:
        return f"auditimds: {record.levelname.lower()}: {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else "")


def _setup_logging() -> None:
    """As logging.basicConfig(level=WARNING), with our message format (nothing if logging is configured)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Millions of short-lived small objects and few cycles: collect the youngest generation less often
    # (about 10 % of scan time with the default threshold of 700).
    gc.set_threshold(50_000, 20, 100)
    _setup_logging()
    parser = build_parser()
    out = GuardedOutput(sys.stdout)
    try:
        args = parser.parse_args(argv)
        if getattr(args, "verbose_sub", False):
            args.verbose = True
        if args.verbose:
            logging.getLogger("auditimds").setLevel(logging.DEBUG)
        if not getattr(args, "func", None):
            if getattr(args, "command", None) == "rules":
                raise UsageError("a rules command is required: check (see 'auditimds rules --help')")
            raise UsageError("a command is required: run, scan, events, doctor, status, notify-test, rules, "
                             "check-config (see 'auditimds --help')")
        rc = int(args.func(args, out))
        out.flush()
        return rc
    except UsageError as e:
        print(f"auditimds: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as e:
        print(f"auditimds: error: {e}", file=sys.stderr)
        discard_stdout()
        return EXIT_OUTPUT
    except BrokenPipeError:
        # `auditimds scan ... | head`: the reader went away; not an error of ours.
        discard_stdout()
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
