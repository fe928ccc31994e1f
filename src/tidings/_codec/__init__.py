"""The codec: the CloudEvents envelope and its encodings (private)."""
