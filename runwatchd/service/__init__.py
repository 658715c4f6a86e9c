"""Running as a service: sd_notify, health, metrics, logs, status."""
