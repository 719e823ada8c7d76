"""The operations behind the API: one handler per request name, grouped by subject."""
