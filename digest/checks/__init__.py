"""Checks on a built issue: email markup and accessibility, links, colour contrast."""
