"""Ingest: fetch sources (http(s) with conditional GET, local files), parse them, clean and dedupe entries."""
