"""Embeddings: backends (one registry) behind ``/embeddings``, batched forward passes, metered per input token."""
