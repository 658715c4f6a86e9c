"""Talking to Runway: the HTTP client, streamed uploads, error mapping, endpoints, media checks."""
