"""Batch detection: `detect`, the rules over history as a live run would have seen it."""
