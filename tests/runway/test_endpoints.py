"""Tests for runwatchd.runway.endpoints: the table of Runway generation endpoints."""

from __future__ import annotations

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
