"""Constants of Runway's HTTP API that the client, the config and the emulator share."""

from enum import StrEnum

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
# Every API call carries exactly this X-Runway-Version.
API_VERSION = "2024-11-06"


class Operation(StrEnum):
    """What the client was doing when it retried: a stable token for metrics labels (the log
    line names the file or task; this never changes with the wording)."""

    CHECK_KEY = "check_key"
    UPLOAD = "upload"
    DOWNLOAD = "download"
    GET_TASK = "get_task"
    CANCEL_TASK = "cancel_task"
    CREATE_TASK = "create_task"
