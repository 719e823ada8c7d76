"""The state store: SQLAlchemy Core tables for clusters and requests.

SQLite (WAL, foreign keys, a busy timeout) under the persistent path by default;
``SKYHOP_DB_URL`` selects another database. Every call is blocking and runs through
:meth:`Store.run` in a worker thread behind a limiter, never on the trio loop.
"""

from skyhop_core.state.db import Store, open_store

__all__ = ["Store", "open_store"]
