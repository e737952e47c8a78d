"""Streaming workers: the item encoder (items -> vectors) and the history updater (interactions -> histories)."""
