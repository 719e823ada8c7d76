"""The ``ssh`` backend: run clusters on machines you list in named SSH node pools.

This release ships a placeholder: the backend is registered (so ``skyhop check`` lists it)
but reports itself disabled until the real implementation arrives.
"""
