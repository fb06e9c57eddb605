"""Plumbing shared by the stages that write files or run long: atomic writes, digests, the key -> value
store (`common.store`) and progress bars.

No research logic lives here; every package but ``tasks`` (the bottom of the data flow, which imports
nothing of ours) and ``similarity`` (pure tensor math) may use it.
"""
