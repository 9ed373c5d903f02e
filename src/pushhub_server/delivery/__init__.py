"""Work that happens outside a request: webhooks and periodic sweeps."""
