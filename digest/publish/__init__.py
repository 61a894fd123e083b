"""Publish: the static web archive of sent issues and its Atom feed."""
