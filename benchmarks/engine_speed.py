"""Engine throughput on one core, against a decode-only pass, and its memory.

    python -m benchmarks.engine_speed [--quick] [--seconds S] [--long-minutes M]

1. Generates a 640x360, 30 fps H.264 (x264 ``preset=medium``) + AAC file of
   ``--seconds`` (default 60; 20 with ``--quick``).
2. Pins the process to one core (``sched_setaffinity``), then alternates, a few
   rounds each, a *decode-only* pass (demux + decode every video and audio frame,
   nothing else: the physical floor) and the engine (``embed_video`` with every
   option of ``marengo3.0``, clip and video scopes). Reports video-seconds per
   wall-second (best round) and the ratio engine / decode-only.
3. Builds a long file by remuxing the short one back to back (no re-encoding:
   ``--long-minutes``, default 60; 5 with ``--quick``) and measures the peak RSS
   of a fresh process embedding the short and the long file: flat memory means
   the two peaks are about equal.

A benchmark, not a test: it asserts nothing. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av

from aioembed import samples
from aioembed.engine import embed_video

MODEL = "marengo3.0"


def decode_only(path: Path) -> None:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        streams = [video, *container.streams.audio[:1]]
        for packet in container.demux(*streams):
            for _ in packet.decode():
                pass


def engine(path: Path) -> int:
    return len(embed_video(path, model_name=MODEL, scopes=("clip", "video")))


def remux_loop(src: Path, dst: Path, minutes: float) -> float:
    """Concatenate ``src`` with itself (packets only) to at least ``minutes``; returns seconds."""
    with av.open(str(src)) as inp:
        span = float(inp.duration or 0) / 1_000_000
        loops = max(1, int(minutes * 60 / span + 0.999))
        with av.open(str(dst), "w") as out:
            pairs = {}
            for s in (inp.streams.video[0], *inp.streams.audio[:1]):
                pairs[s.index] = (s, out.add_stream_from_template(s))
            last_dts: dict[int, int] = {}
            offset = 0.0  # seconds added to this loop's timestamps
            for _ in range(loops):
                inp.seek(0)
                loop_end = offset
                for packet in inp.demux(*(s for s, _ in pairs.values())):
                    if packet.dts is None:
                        continue
                    s, o = pairs[packet.stream.index]
                    tb = float(s.time_base or 1)
                    shift = round(offset / tb)
                    dts = packet.dts + shift
                    if dts <= last_dts.get(s.index, -(2**62)):
                        continue  # keep DTS strictly increasing across the seam
                    last_dts[s.index] = dts
                    packet.pts = (packet.pts if packet.pts is not None else packet.dts) + shift
                    packet.dts = dts
                    loop_end = max(loop_end, (packet.pts + (packet.duration or 0)) * tb)
                    packet.stream = o
                    out.mux(packet)
                offset = loop_end
    return offset


_PEAK = """
import json, resource, sys, time
from aioembed.engine import embed_video
t = time.perf_counter()
n = len(embed_video(sys.argv[1], model_name="marengo3.0", scopes=("clip", "video")))
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "segments": n, "seconds": time.perf_counter() - t}))
"""


def peak(path: Path) -> dict[str, Any]:
    cpu = str(min(os.sched_getaffinity(0)))
    out = subprocess.run(
        ["taskset", "-c", cpu, sys.executable, "-c", _PEAK, str(path)]
        if _has_taskset()
        else [sys.executable, "-c", _PEAK, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description="engine throughput and memory")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--long-minutes", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    long_minutes = args.long_minutes or (5.0 if args.quick else 60.0)
    rounds = args.rounds or (3 if args.quick else 5)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        path = samples.make_video(
            root / "speed.mp4",
            duration=seconds,
            width=640,
            height=360,
            fps=30,
            seed=42,
            codec_options={"preset": "medium"},
        )
        made = time.perf_counter() - t0
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        decode_only(path)  # warm caches and imports
        engine(path)
        dec, eng, dec_cpu, eng_cpu = [], [], [], []
        for _ in range(rounds):
            c, t = time.process_time(), time.perf_counter()
            decode_only(path)
            dec.append(time.perf_counter() - t)
            dec_cpu.append(time.process_time() - c)
            c, t = time.process_time(), time.perf_counter()
            engine(path)
            eng.append(time.perf_counter() - t)
            eng_cpu.append(time.process_time() - c)
        long_path = root / "long.mp4"
        long_seconds = remux_loop(path, long_path, long_minutes)
        short_peak = peak(path)
        long_peak = peak(long_path)

    d, e = seconds / min(dec), seconds / min(eng)
    print(
        f"## Engine speed (one core, {seconds:g} s of 640x360 30 fps H.264 medium + AAC, "
        f"model {MODEL}, clip+video scopes, {rounds} rounds, best)\n"
    )
    mid = len(dec) // 2
    print("| pass | video-s / wall-s (best) | median | video-s / CPU-s (best) |")
    print("|---|---|---|---|")
    print(
        f"| decode only | {d:.1f} | {seconds / sorted(dec)[mid]:.1f} | "
        f"{seconds / min(dec_cpu):.1f} |"
    )
    print(f"| engine | {e:.1f} | {seconds / sorted(eng)[mid]:.1f} | {seconds / min(eng_cpu):.1f} |")
    print(
        f"\nengine / decode-only = **{e / d:.2f}** wall (median rounds "
        f"{sorted(dec)[mid] / sorted(eng)[mid]:.2f}; CPU time {min(dec_cpu) / min(eng_cpu):.2f})\n"
    )
    print("| file | duration | peak RSS | engine time |")
    print("|---|---|---|---|")
    print(
        f"| short | {seconds:g} s | {short_peak['peak_mb']:.0f} MB | {short_peak['seconds']:.1f} s |"
    )
    print(
        f"| long (remuxed) | {long_seconds / 60:.0f} min | {long_peak['peak_mb']:.0f} MB | "
        f"{long_peak['seconds']:.1f} s ({long_seconds / long_peak['seconds']:.0f} video-s/s) |"
    )
    print(f"\n(sample generation {made:.0f} s)")


if __name__ == "__main__":
    main()
