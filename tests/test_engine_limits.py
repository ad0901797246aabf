"""Engine-level bounds on small inputs that would cost a decoder a lot (issue 11).

The inputs are generated here (:mod:`_bombs`): a video that is 640x360 for 5 s
and then grows, a PNG whose pixels are read from its header, an MKV that
declares 1e8 s. Each limit refuses them before the expensive part.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _bombs import png_bomb, size_change_video
from _faults import set_mkv_duration

from aioembed.engine import MediaError, MediaLimits, embed_audio, embed_image, embed_video, probe
from aioembed.engine._imagesize import image_size

MODEL = "marengo3.0"


def test_resolution_change_mid_stream_is_checked(tmp_path: Path) -> None:
    video = size_change_video(tmp_path / "switch.ts", 1000)
    assert (probe(video).width, probe(video).height) == (640, 360)  # all a probe sees
    limits = MediaLimits(max_width=960, max_height=960)
    with pytest.raises(MediaError) as err:
        embed_video(video, model_name=MODEL, limits=limits, threads=1)
    assert err.value.code == "video_resolution_too_high"
    assert "1000x1000 (from 5.00 s on)" in err.value.message
    # Without limits (the old behaviour) it decodes.
    assert embed_video(video, model_name=MODEL, threads=1)


def test_image_pixels_come_from_the_header(tmp_path: Path, video_factory: Any) -> None:
    png = png_bomb(tmp_path / "big.png", 2500)  # 50 MB decoded, a few KB on disk
    assert image_size(png) == image_size(png.read_bytes()) == (2500, 2500)
    jpeg = Path(video_factory.image(suffix=".jpg"))
    assert image_size(jpeg) == (360, 360)
    assert image_size(b"not an image") is None
    started = time.monotonic()
    with pytest.raises(MediaError) as err:
        embed_image(png, model_name=MODEL, max_pixels=4_000_000)
    assert err.value.code == "parameter_invalid"
    assert err.value.message.startswith("The image is 2500x2500 (6.2 megapixels)")
    assert time.monotonic() - started < 5
    assert embed_image(jpeg, model_name=MODEL, max_pixels=4_000_000).shape == (512,)


def test_audio_duration_is_capped_before_spans(video_factory: Any) -> None:
    mkv = Path(video_factory(duration=5, fps=5, suffix=".mkv")).read_bytes()
    with pytest.raises(MediaError) as err:
        embed_audio(set_mkv_duration(mkv, 1e8), model_name=MODEL, max_duration=7200)
    assert err.value.code == "parameter_invalid"
    assert err.value.message.startswith("The audio is too long (100000000 s)")
