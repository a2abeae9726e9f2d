"""auditimds: IMDS credential-theft detection from auditd logs."""

__version__ = "0.1.0"
