"""skyhop's core: models, the plugin contract, state, the request engine and the server.

Nothing here is imported on the CLI's fast path except the models and the wire format;
the server stack (trio, hypercorn, starlette, SQLAlchemy) is imported only by the
modules that serve.
"""

__version__ = "0.1.0"

#: Version of the HTTP API between the SDK and the server. A client refuses a server whose
#: API version differs in the major part (the number before the dot).
API_VERSION = "1.0"
