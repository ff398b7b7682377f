"""Accounts: sites, their settings, users and API tokens."""
