"""multisock: Python's socket module, backed by a TCP/IP stack written in Python."""

__version__ = "0.1.0"
