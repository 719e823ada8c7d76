"""Server-side storage: the upload store for client files (:mod:`.uploads`, :mod:`.manifest`)."""
