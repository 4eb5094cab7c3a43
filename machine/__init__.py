"""The pseries machine in layers (docs/architecture.md).

config <- sched <- board <- migration <- monitor <- cli; each imports only those before it.
"""
