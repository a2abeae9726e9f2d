"""The parts of the agent (`auditimds run`) that daemon.py composes: the state dir, the outputs, the inputs."""


class DaemonError(Exception):
    """A problem that stops the daemon from starting; one line for the user."""


class StateDirInUse(DaemonError):
    """Another agent runs with this state dir."""
