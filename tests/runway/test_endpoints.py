"""Tests for runwatchd.runway.endpoints: the table of Runway generation endpoints."""

from __future__ import annotations

from runwatchd.runway import schemas
from runwatchd.runway.endpoints import ENDPOINTS


def test_endpoint_table_covers_every_runway_endpoint() -> None:
    """Every generation endpoint Runway documents has a spec."""
    assert {
        "image_to_video",
        "text_to_video",
        "video_to_video",
        "text_to_image",
        "character_performance",
        "video_upscale",
        "image_upscale",
        "sound_effect",
        "text_to_speech",
        "speech_to_speech",
        "voice_isolation",
        "voice_dubbing",
    } == set(ENDPOINTS)


def test_every_endpoint_and_input_field_is_in_the_schemas() -> None:
    """The hand-kept table names only endpoints the shipped schemas have, and each input field
    takes at most the media kinds the schemas give it (for the models that have it)."""
    shipped = schemas.default()
    assert set() == set(ENDPOINTS) - set(shipped.endpoints())
    wider = []
    for endpoint, spec in ENDPOINTS.items():
        for name, field in spec.inputs.items():
            path = (name, "uri") if field.typed else (name,)
            kinds = {k for f in shipped.media_fields(endpoint) if f.path == path for k in f.kinds}
            if not field.kinds <= kinds:
                wider.append((endpoint, name, sorted(field.kinds - kinds)))
    assert [] == wider
