"""The dashboard's browser tests (a package, so one local server serves every module:
see ``conftest.server``)."""
