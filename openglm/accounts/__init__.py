"""Accounts, API keys, authentication, metering, billing and limits."""
