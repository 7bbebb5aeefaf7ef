"""Downstream stages: behaviour cloning, the few-label action decoder and online evaluation."""
