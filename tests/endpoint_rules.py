"""One valid rule per generation endpoint of the shipped schemas, with a media file that fits it:
what `check-config` must accept and the emulator must take to SUCCEEDED (current models only;
other media than the file's own is given as HTTPS URLs, which the emulator takes as they are)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROMPT = "a slow pan over {stem}"
IMAGE_URL, VIDEO_URL = "https://example.com/ref.png", "https://example.com/ref.mp4"
STS_VOICE = {"type": "runway-preset", "presetId": "Maya"}
# endpoint -> (the file's name, the rule table); the file goes to the default input field
# unless the request places it with "{uri}".
EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    # The keyframe list form (issue 12); the bare default input is in most other tests.
    "image_to_video": ("shot.png", {"model": "gen4.5", "promptText": PROMPT, "ratio": "1280:720",
                                    "duration": 5,
                                    "promptImage": [{"uri": "{uri}", "position": "first"}]}),
    "text_to_video": ("shot.png", {"model": "hailuo3", "promptText": PROMPT, "ratio": "16:9",
                                   "duration": 6, "references": [{"uri": "{uri}"}]}),
    "video_to_video": ("clip.mp4", {"model": "seedance2", "promptText": PROMPT,
                                    "promptVideo": "{uri}"}),
    "text_to_image": ("shot.png", {"model": "gen4_image", "promptText": "@ref in the rain",
                                   "ratio": "1920:1080",
                                   "referenceImages": [{"uri": "{uri}", "tag": "ref"}]}),
    "character_performance": ("actor.mp4", {"model": "act_two",
                                            "reference": {"type": "video", "uri": VIDEO_URL}}),
    "video_upscale": ("clip.mp4", {"model": "magnific_video_upscaler_creative"}),
    "image_upscale": ("shot.png", {"model": "magnific_precision_upscaler_v2"}),
    "text_to_speech": ("voice.mp3", {"model": "seed_audio", "promptText": "Hello there",
                                     "voice": {"type": "reference-audio", "audioUri": "{uri}"}}),
    "speech_to_speech": ("voice.wav", {"model": "eleven_multilingual_sts_v2", "voice": STS_VOICE}),
    "voice_isolation": ("voice.mp3", {"model": "eleven_voice_isolation"}),
    "voice_dubbing": ("voice.flac", {"model": "eleven_voice_dubbing", "targetLang": "de"}),
    "video_to_audio": ("clip.mp4", {"model": "mirelo_sfx_2_0", "duration": 5}),
    "video_to_hdr": ("clip.mov", {"model": "ruby", "outputFormat": "hdr10"}),
    "avatar_videos": ("voice.wav", {"model": "gwm1_avatars",
                                    "avatar": {"type": "runway-preset", "presetId": "influencer"}}),
    "generate/video": ("shot.png", {"configId": "cfg-video", "input": {
        "promptText": PROMPT, "duration": 5,
        "referenceImages": [{"role": "first", "uri": "{uri}"}]}}),
    "generate/image": ("shot.png", {"configId": "cfg-image", "input": {
        "promptText": PROMPT, "referenceImages": [{"uri": "{uri}"}]}}),
    "generate/audio": ("voice.mp3", {"configId": "cfg-audio", "input": {
        "promptText": "Hello there", "type": "speech",
        "voice": {"type": "reference-audio", "audioUri": "{uri}"}}}),
    "recipes/ad_localization": ("ad.png", {"targetLanguage": "de", "version": "2026-06"}),
    "recipes/marketing_stock_image": ("ref.png", {"prompt": PROMPT, "version": "2026-06"}),
    "recipes/multi_shot_video": ("first.png", {"mode": "auto", "prompt": PROMPT,
                                               "version": "2026-06"}),
    "recipes/product_ad": ("product.png", {"version": "2026-06", "productInfo": "a red mug"}),
    "recipes/product_campaign_image": ("product.png", {"prompt": PROMPT, "version": "2026-06"}),
    "recipes/product_swap": ("spot.mp4", {"version": "2026-06",
                                          "originalProductImage": {"uri": IMAGE_URL},
                                          "newProductImages": [{"uri": IMAGE_URL}]}),
    "recipes/product_ugc": ("product.png", {"version": "2026-06",
                                            "characterImage": {"uri": IMAGE_URL}}),
}
# Endpoints no file can go to: sound_effect makes a sound from a prompt alone.
NO_MEDIA = {"sound_effect"}


def example_rule(endpoint: str) -> tuple[str, dict[str, Any]]:
    """(file name, rule table) of `endpoint`'s example."""
    name, request = EXAMPLES[endpoint]
    return name, {"endpoint": endpoint, "output_dir": "renders", "request": request}


def toml_value(value: Any) -> str:
    """`value` as an inline TOML value (JSON strings, numbers and arrays are TOML too)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def config_text(folder: Path, state: Path, rule: dict[str, Any]) -> str:
    """A config with one folder and `rule` as its [folder.rule]; files count as settled at once."""
    lines = [f"[runway]\nstate_dir = {toml_value(str(state))}\n",
             "[defaults]\nsettle_seconds = 0\nrescan_interval = 0\n",
             f"[[folder]]\npath = {toml_value(str(folder))}\n[folder.rule]\n"]
    lines += [f"{k} = {toml_value(v)}\n" for k, v in rule.items() if k != "request"]
    lines.append("[folder.rule.request]\n")
    lines += [f"{k} = {toml_value(v)}\n" for k, v in rule.get("request", {}).items()]
    return "".join(lines)
