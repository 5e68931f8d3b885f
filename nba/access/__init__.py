"""Who may call what: API keys, roles, rate limits, browser origins and the audit trail (docs/access.md)."""
