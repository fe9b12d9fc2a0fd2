"""Voice notes between platforms: WeChat Work plays only AMR as voice, Telegram only OGG/Opus.

Converted by real tools run as subprocesses, bytes in and out through pipes (no temporary files):

- AMR → OGG/Opus (for Telegram `sendVoice`): ffmpeg alone (its AMR-NB decoder, libopus).
- OGG/Opus → AMR (for WeChat Work `media/upload type=voice`): ffmpeg decodes to 8 kHz mono PCM
  and SoX encodes AMR-NB with libopencore-amrnb, because Debian's ffmpeg is built without an
  AMR-NB *encoder* (opencore-amr would make it a version-3 build); SoX loads the same codec library.

A tool that is missing or fails gives None (one log line) and the caller sends the voice as a
file, as before conversion existed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

log = logging.getLogger(__name__)

AMR, OGG = "amr", "ogg"
MIMES = {AMR: "audio/amr", OGG: "audio/ogg"}
TIMEOUT = 60.0  # seconds for one conversion; a voice note is at most a few minutes
AMR_MAGIC = b"#!AMR\n"
# bytes per AMR-NB frame (header byte included) by frame type; each frame is 20 ms
AMR_FRAME_BYTES = (13, 14, 16, 18, 20, 21, 27, 32, 6, 7, 6, 6, 1, 1, 1, 1)
WECOM_VOICE_SECONDS = 60  # WeChat Work's limit for a voice message

_PCM = ("-f", "s16le", "-ac", "1", "-ar", "8000")


def format_of(data: bytes) -> str | None:
    """amr, ogg (Opus in Ogg) or None, by the file's own magic bytes, not by what a platform said."""
    if data.startswith(AMR_MAGIC):
        return AMR
    if data.startswith(b"OggS") and b"OpusHead" in data[:128]:
        return OGG
    return None


def amr_seconds(data: bytes) -> float:
    """The length of an AMR-NB file, by counting its frames (WeChat Work refuses voice over 60 s)."""
    pos, frames = len(AMR_MAGIC), 0
    while pos < len(data):
        pos += AMR_FRAME_BYTES[(data[pos] >> 3) & 0x0F]
        frames += 1
    return frames * 0.02


async def _run(argv: list[str], data: bytes) -> bytes:
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{argv[0]} took more than {TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err.decode(errors='replace').strip()[:300]}")
    return out


class VoiceConverter:
    def __init__(self, ffmpeg: str = "ffmpeg", sox: str = "sox") -> None:
        self.ffmpeg, self.sox = ffmpeg, sox

    async def convert(self, data: bytes, target: str) -> bytes | None:
        """The voice in the target format (amr or ogg); None when it cannot be converted."""
        ffmpeg = shutil.which(self.ffmpeg)
        sox = shutil.which(self.sox) if target == AMR else "-"
        if not ffmpeg or not sox:
            log.warning("voice not converted to %s: %s not found; it goes as a file", target,
                        self.ffmpeg if not ffmpeg else self.sox)
            return None
        decode = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", "pipe:0"]
        try:
            if target == OGG:
                out = await _run([*decode, "-vn", "-ac", "1", "-c:a", "libopus", "-b:a", "24k",
                                  "-application", "voip", "-f", "ogg", "pipe:1"], data)
            else:
                pcm = await _run([*decode, "-vn", *_PCM, "pipe:1"], data)
                out = await _run([sox, "-V1", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1",
                                  "-", "-t", "amr-nb", "-C", "7", "-"], pcm)
        except (RuntimeError, OSError) as e:
            log.warning("voice not converted to %s (%s); it goes as a file", target, e)
            return None
        if format_of(out) != target:
            log.warning("voice conversion to %s gave something else (%d bytes); it goes as a file", target, len(out))
            return None
        return out
