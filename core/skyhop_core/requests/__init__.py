"""The request engine: every API call becomes a request with an ID, a log and a result."""
