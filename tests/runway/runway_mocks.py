"""Constants the client's respx tests share: the fake key and the API's base URL."""

SECRET = "key_s3cr3t0123456789abcdef"
BASE = "https://api.test"
