"""Nashra: an RSS/Atom aggregator and publisher for Arabic-first, right-to-left news."""

__version__ = "0.1.0"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # every process's, alike
