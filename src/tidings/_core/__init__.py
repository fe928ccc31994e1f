"""The core: the bus, publishing, the consume pipeline and its stages (private)."""
