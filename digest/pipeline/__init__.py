"""The one place that composes the stages: fetch -> parse -> compose -> render -> compile -> deliver.

Each submodule wires one stretch of the pipeline (ingest, build, send, run); stages never import each
other, only this package does.
"""
