"""Cutover: certify that a container runtime keeps T4's promises."""
__version__ = "0.1.0"
