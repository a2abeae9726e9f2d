"""What the commands of cli.py share: exit codes and the errors that make them, the guarded output, host
identity, loading the rule set, reading the input files (with the progress bar) and the summary line."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Dict, List, Optional, Sequence, TextIO, Tuple, Union

from .rules.builtin import builtin_rules_dir, missing_rule_path_message, resolve_rule_path

if TYPE_CHECKING:  # loaded when the rules are (startup time of the commands that need none)
    from .rules.loader import Rule

EXIT_OK = 0
EXIT_OUTPUT = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad usage or unusable input: printed as one line, exit code 2."""


class OutputError(Exception):
    """The command's output cannot be written (disk full, I/O error): printed as one line, exit code 1."""


class GuardedOutput:
    """A text stream whose write errors become :class:`OutputError`; a closed pipe stays BrokenPipeError."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write output: {e.strerror or e}") from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write output: {e.strerror or e}") from None

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def discard_stdout() -> None:
    """After a write error on stdout: point its descriptor at /dev/null, so that the data still buffered
    cannot fail again when the interpreter flushes it at exit ("Exception ignored ..."), as the Python
    documentation recommends for SIGPIPE/BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real descriptor (a test's captured stream)
        pass


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {v}")
    return v


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


RuleSource = Tuple[str, str]  # (where it was given, e.g. "--rules" or "[rules] paths"; the path or pack name)


def resolve_rule_sources(sources: Sequence[RuleSource], builtin_dir: Optional[Path]) -> List[Tuple[str, Path]]:
    """(label, path) of each rule path to load, in order, each file or directory once (compared resolved; the
    built-in directory counts as given first).  A pack shipped with auditimds may be given by name
    (`--rules hardened`).  Raises UsageError for a path that does not exist."""
    seen = {builtin_dir.resolve()} if builtin_dir is not None else set()
    out: List[Tuple[str, Path]] = []
    for label, raw in sources:
        p = resolve_rule_path(raw)
        if p is None:
            raise UsageError(f"{label} {missing_rule_path_message(raw)}")
        key = p.resolve()
        if key in seen:
            continue
        seen.add(key)
        out.append((f"{label} {raw}", p))
    return out


def no_rules_reason(builtin: bool, empty: Sequence[str], refused: int, none_given: str) -> str:
    """Why a rule set came out empty, for the one-line error."""
    parts = ["built-in rules disabled" if not builtin else "the built-in rules were refused"]
    if empty:
        parts.append("no rule files in " + ", ".join(empty))
    if refused:
        parts.append(f"{refused} rule file(s) refused (see the warnings above)")
    if not empty and not refused and not builtin:
        parts.append(none_given)
    return "no rules loaded (" + "; ".join(parts) + ")"


def load_rule_set(sources: Sequence[RuleSource], builtin: bool, allow_none: bool = False, lazy_first: bool = True,
                  none_given: str = "no --rules given") -> List[Rule]:
    """Load the built-in rules (if `builtin`) and the given rule paths; warnings on stderr.

    A given directory without rule files is reported once; a rule file that cannot be used is skipped with a
    warning.  No rule at all is an error, except with `allow_none` when none was asked for (scan counts
    events then)."""
    from .rules.loader import load_rules, rule_files

    base = builtin_rules_dir() if builtin else None
    given = resolve_rule_sources(sources, base)
    empty = [label for label, p in given if not rule_files(p)]
    paths: List[Union[str, Path]] = [base] if base is not None else []
    paths += [p for _, p in given]
    rules, errors = load_rules(paths, lazy_first=lazy_first)
    for err in errors:
        print(f"auditimds: warning: rule skipped: {err}", file=sys.stderr)
    if not rules:
        if allow_none and not paths:
            print("auditimds: warning: no rules: counting events only", file=sys.stderr)
            return []
        raise UsageError(no_rules_reason(builtin, empty, len(errors), none_given))  # names the empty paths
    for label in empty:
        print(f"auditimds: warning: {label}: no *.toml rule files in this directory", file=sys.stderr)
    return rules


def cli_rules(paths: Sequence[str]) -> List[RuleSource]:
    return [("--rules", p) for p in paths]


# -- progress ---------------------------------------------------------------------------------------------


def progress_text(label: str, done: int, total: int, alerts: int) -> str:
    if total <= 0:
        return f"{label[-40:]:<40} {'':<39}  alerts: {alerts}"
    frac = min(done / total, 1.0)
    bar = "#" * int(frac * 30)
    return f"{label[-40:]:<40} [{bar:<30}] {frac * 100:5.1f}%  alerts: {alerts}"


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, total: int, label: str) -> None:
        self.stream = stream
        self.total = total  # 0: unknown (a pipe): no bar, only the alert count
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
        self.stream.write("\r" + progress_text(self.label, done, self.total, alerts))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


# -- commands ---------------------------------------------------------------------------------------------


Handles = List[Tuple[str, BinaryIO]]


def open_inputs(names: Sequence[str], stdin: Optional[BinaryIO] = None) -> Handles:
    """Open every input first, so that a typo in the last name fails before any output.  `-` is stdin."""
    from .source.reader import STDIN, LogOpenError, open_log

    if list(names).count(STDIN) > 1:
        raise UsageError("- (standard input) can be read only once")
    handles: Handles = []
    for name in names:
        try:
            handles.append((name, open_log(name, stdin)))
        except LogOpenError as e:
            close_inputs(handles)
            raise UsageError(str(e)) from None
    return handles


def close_inputs(handles: Handles) -> None:
    for _, f in handles:
        try:
            f.close()
        except OSError:
            pass


NODE_SNIFF = 1 << 16


def has_node_prefix(head: bytes) -> bool:
    """Whether the start of a log holds `node=` records (an aggregated, multi-host log)."""
    return head.startswith(b"node=") or b"\nnode=" in head


def sniff_node_prefixes(handles: Handles) -> Tuple[bool, Handles]:
    """(whether any input is an aggregated log, the handles to read from: a pipe's first bytes are put back)."""
    from .source.reader import LogOpenError, read_head

    out: Handles = []
    found = False
    for i, (name, f) in enumerate(handles):
        try:
            head, f = read_head(f, NODE_SNIFF)
        except LogOpenError as e:
            close_inputs(out + handles[i:])
            raise UsageError(f"{name}: {e}") from None
        found = found or has_node_prefix(head)
        out.append((name, f))
    return found, out


def run_files(args: argparse.Namespace, handles: Handles, on_alert: Any, on_event: Any,
               rules: List[Rule]) -> Dict[str, Any]:
    from .pipeline import Pipeline
    from .source.reader import LogOpenError, file_size, raw_position, read_chunks

    host_id, host_name = host_identity(args)
    pipe = Pipeline(rules, host_id, host_name, on_alert=on_alert, on_event=on_event,
                    reorder_ms=args.reorder_ms)
    t0 = time.perf_counter()
    now = time.time()
    try:
        for name, f in handles:
            progress = Progress(sys.stderr, file_size(f), os.path.basename(name))
            try:
                for chunk in read_chunks(f):
                    pipe.feed(chunk, now)
                    progress.update(raw_position(f), pipe.counters.alerts)
            except LogOpenError as e:
                raise UsageError(f"{name}: {e}") from None
            finally:
                progress.close()
    finally:
        close_inputs(handles)
    pipe.finish()
    st = pipe.stats()
    st["seconds"] = round(time.perf_counter() - t0, 3)
    st["files"] = len(handles)
    return st


def summary_line(st: Dict[str, Any], alerts: bool = True) -> str:
    """The one summary line on stderr; `events` has no rules, so no alert count."""
    return (
        f"auditimds: {st['files']} file(s), {st['lines']} lines, {st['events']} events "
        f"({st['exec_events']} exec, {st['network_events']} network), {st['malformed_lines']} malformed lines"
        + (f", {st['alerts']} alerts" if alerts else "")
        + f", {st['seconds']:.2f} s"
    )
