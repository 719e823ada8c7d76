"""The ``local`` backend: clusters whose nodes are directories on this machine."""
