"""The corrections store, shared by the web UI (which writes it) and the trainer (which reads it).

A package of its own so that neither imports the other: the trainer's image carries no web UI
code and no Flask, and the web UI's carries no TensorFlow. See `corrections.store`.
"""
