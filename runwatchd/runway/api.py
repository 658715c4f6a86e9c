"""Constants of Runway's HTTP API that the client, the config and the emulator share."""

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
# Every API call carries exactly this X-Runway-Version.
API_VERSION = "2024-11-06"
