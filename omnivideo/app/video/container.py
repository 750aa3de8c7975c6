"""Why a file cannot be read as a video: one clear line for the user, from the file's own bytes.

OpenCV only says "could not open". Its bundled FFmpeg has no audio path on Linux wheels, so an
audio-only file, a text file named .mp4 and an MP4 cut off before its index all look the same
there. This module tells them apart by looking at the first bytes and the container's top-level
structure (ISO-BMFF boxes, Matroska codec ids, RIFF / Ogg / MP3 / FLAC / ADTS signatures).

    problem = explain_open_failure("clip.mp4", opened=None)   # None when the path looks usable
"""
import os
import re

_SNIFF_BYTES = 1 << 20  # codec ids and track headers of Matroska / Ogg sit near the start
_MOOV_LIMIT = 64 << 20  # the MP4 index of a multi-hour video is a few MB


def _mp4_boxes(f, size: int) -> tuple[list[str], str | None]:
    """Top-level ISO-BMFF box types, and the type of a box that runs past the end of the file."""
    types, pos = [], 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        box_size, box_type = int.from_bytes(head[:4], "big"), head[4:8].decode("latin-1")
        if box_size == 1 and len(head) == 16:
            box_size = int.from_bytes(head[8:16], "big")
        elif box_size == 0:
            box_size = size - pos
        if box_size < 8 or not box_type.isprintable():
            break
        types.append(box_type)
        if pos + box_size > size:
            return types, box_type
        pos += box_size
    return types, None


def _mp4_handlers(f, size: int) -> set[bytes]:
    """Track handler types in the moov box: b'vide', b'soun', ..."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        box_size = int.from_bytes(head[:4], "big")
        if box_size == 1:
            box_size = int.from_bytes(head[8:16], "big")
        if head[4:8] == b"moov":
            moov = f.read(min(box_size, _MOOV_LIMIT) - 16)
            return {moov[i + 12:i + 16] for i in (m.start() for m in re.finditer(b"hdlr", moov))}
        if box_size < 8:
            break
        pos += box_size
    return set()


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return sum(ch.isprintable() or ch in "\r\n\t" for ch in text) >= 0.95 * len(text)


def _diagnose_content(path: str) -> str:
    """Best guess why OpenCV could not open `path` (which exists, is a file, is readable, not empty)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
        if head[4:8] == b"ftyp":
            types, cut = _mp4_boxes(f, size)
            if cut is not None:
                return f"the file is truncated: it ends inside its '{cut}' box (incomplete download or copy?)"
            if "moov" not in types:
                return "the file is truncated or still being written: its MP4 index (moov box) is missing"
            handlers = _mp4_handlers(f, size)
            if b"vide" not in handlers and b"soun" in handlers:
                return "it has no video stream (audio only)"
            return "its MP4 container is damaged (OpenCV/FFmpeg could not open it)"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska / WebM: CodecID element (0x86) "V_..." / "A_..."
        kinds = set(re.findall(rb"\x86[\x81-\xbf](V_|A_)", head))
        if kinds == {b"A_"}:
            return "it has no video stream (audio only)"
        return "its Matroska/WebM container is damaged or truncated"
    if (head.startswith(b"RIFF") and head[8:12] == b"WAVE") or head.startswith((b"fLaC", b"ID3")):
        return "it is an audio file, with no video stream"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:  # MPEG audio / ADTS frame sync
        return "it is an audio file (MP3/AAC), with no video stream"
    if head.startswith(b"OggS"):
        return "its Ogg container is damaged" if b"\x80theora" in head else "it has no video stream (Ogg audio)"
    if _looks_like_text(head[:4096]):
        return "it is not a video: the file contains text"
    return "it is not a video file OpenCV/FFmpeg can read (unknown or damaged container)"


def container_kind(path: str) -> str:
    """'mp4' (ISO-BMFF: mp4/mov/m4a), 'matroska' (mkv/webm), 'avi', 'ogg' or 'other', from magic bytes."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    return "ogg" if head.startswith(b"OggS") else "other"


def explain_open_failure(path: str, opened: bool | None) -> str | None:
    """One line saying why `path` cannot be used as a video, or None when nothing is wrong yet.

    `opened=None` checks only the path (existence, type, permission, size) before OpenCV is tried;
    `opened=False` also explains a file OpenCV refused, from its content.
    """
    if not os.path.exists(path):
        return f"{path}: no such file"
    if os.path.isdir(path):
        return f"{path}: is a directory, not a video file"
    if not os.path.isfile(path):
        return f"{path}: not a regular file"
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        return f"{path}: permission denied (the file is not readable by this user)"
    except OSError as e:
        return f"{path}: cannot be read ({e.strerror})"
    if os.path.getsize(path) == 0:
        return f"{path}: the file is empty (0 bytes)"
    if opened is None:
        return None
    return f"{path}: cannot open as a video: {_diagnose_content(path)}"
