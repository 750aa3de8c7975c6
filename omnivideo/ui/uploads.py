"""Uploaded videos are kept in `<data dir>/videos`, so the library's paths outlive Gradio's temp files.

An upload arrives as a temp file in Gradio's upload folder; the library (and its sessions) refer to
a video by path, so the file is hard-linked (or copied) once into the data dir under its own name.
Uploading the same file again reuses the kept one, so its cache entry still hits. Nothing that
failed is kept: an upload that is not a video is never copied, and `discard` removes a rejected
upload from Gradio's folder, or a kept copy whose ingest failed or was cancelled.

    path = keep_upload(Path("/data/gradio/3f2a.../match.mp4"), data_dir / "videos")   # -> /data/videos/match.mp4
    discard(Path("/data/gradio/3f2a.../notes.txt"), inside=data_dir / "gradio")
"""
import filecmp
import os
import shutil
from pathlib import Path

from omnivideo.errors import VideoError


def _candidates(videos_dir: Path, name: str):
    stem, suffix = Path(name).stem, Path(name).suffix
    yield videos_dir / name
    for i in range(1, 10_000):
        yield videos_dir / f"{stem}-{i}{suffix}"


def keep_upload(upload: Path, videos_dir: Path) -> Path:
    """The path of `upload`'s bytes inside `videos_dir`: an identical kept file, or a new link/copy."""
    return keep_upload_once(upload, videos_dir)[0]


def keep_upload_once(upload: Path, videos_dir: Path) -> tuple[Path, bool]:
    """`keep_upload`, and whether this call made the file (False: the same bytes were kept before)."""
    upload = Path(upload)
    if not upload.is_file():
        raise VideoError(f"the upload {upload.name} is not a file (did the upload finish?)")
    videos_dir.mkdir(parents=True, exist_ok=True)
    name = upload.name or "video.mp4"
    for target in _candidates(videos_dir, name):
        if not target.exists():
            break
        if target.stat().st_size == upload.stat().st_size and filecmp.cmp(target, upload, shallow=False):
            return target, False
    else:
        raise VideoError(f"too many videos named {name} in {videos_dir}")
    tmp = target.with_name(f".{target.name}.part")
    try:
        os.link(upload, tmp)          # same filesystem (the upload folder is in the data dir): no copy
    except OSError:
        shutil.copyfile(upload, tmp)
    tmp.replace(target)
    return target, True


def discard(path: Path | None, inside: Path) -> bool:
    """Delete the file `path` if it lies below `inside` (never anything else), and its folder once
    empty when that is a folder of its own (Gradio puts each upload in one); True if deleted."""
    if path is None:
        return False
    path, inside = Path(path).resolve(), Path(inside).resolve()
    if inside not in path.parents or not path.is_file():
        return False
    path.unlink()
    if path.parent != inside and not any(path.parent.iterdir()):
        path.parent.rmdir()
    return True
