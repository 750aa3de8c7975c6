"""Browser-playable copies of videos, for the player only (the model always reads the original).

Browsers play H.264/AV1 in .mp4 and VP8/VP9/AV1 in .webm, not OpenCV's mp4v or HEVC. `gr.Video`
converts such files itself, but again at every display, into a new temp folder; long videos would
be re-encoded at every open. Here the conversion (Gradio's: a remux when the streams allow it, else
an H.264 encode) runs once per file version and is kept in `<data dir>/playback`.

    player_path = Playback(data_dir / "playback").playable("lecture_mp4v.mp4")
"""
import hashlib
import logging
import shutil
from pathlib import Path

from gradio.processing_utils import convert_video_to_playable_mp4, video_is_playable

log = logging.getLogger(__name__)


class Playback:
    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def target(self, path: Path) -> Path:
        """Where the playable copy of this version of `path` (resolved path, size, mtime) is kept."""
        st = path.stat()
        key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
        return self.dir / f"{path.stem}-{key}.mp4"

    def playable(self, path: str | Path) -> Path:
        """`path` itself if a browser plays it (or nothing can convert it), else its kept playable copy."""
        path = Path(path)
        if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
            log.warning("no ffmpeg: %s is shown as is and may not play in the browser", path.name)
            return path
        if video_is_playable(str(path)):
            return path
        target = self.target(path)
        if target.exists():
            return target
        work = self.dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        converted = Path(convert_video_to_playable_mp4(str(path), cache_dir=str(work)))
        if converted == path:   # Gradio's conversion failed and handed back the original
            log.warning("could not make %s playable in the browser", path.name)
            return path
        converted.replace(target)
        shutil.rmtree(converted.parent, ignore_errors=True)
        return target
