"""ASI-Arch: five services (cognition, researcher, engineer, judge, analyst) and their shared runtime."""

__version__ = "0.1.0"
