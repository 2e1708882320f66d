"""Peer implementations that `make bench` runs side by side with rankwright."""
