"""Transports: the broker bindings under the bus. See `_base` for the contract."""
