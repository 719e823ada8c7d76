"""The API server: a Starlette app served by hypercorn's trio worker, with the engine."""
