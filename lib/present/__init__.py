"""Presenting results: tables, the path diagram, the path view."""
