"""digest: turns an organisation's news feeds into a weekly email digest, sent exactly once."""

__version__ = "0.1.0"
