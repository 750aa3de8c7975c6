"""Who may connect (host, auth, share) and which files the server may hand out.

Gradio serves a file only if it is in its upload folder or in `allowed_paths`. OmniVideo points
the upload folder into the data dir and allows exactly the kept uploads (`<data dir>/videos`) and
the videos the user added (library entries, paths added while running), plus the browser-playable
copies of those (`<data dir>/playback`, omnivideo/ui/playback.py). The KV cache and the models
are blocked outright. Listening beyond this machine needs a password.

    options = ServeOptions.from_cli(host="0.0.0.0", port=7860, auth="me:secret", share=False)
    access = FileAccess(data_dir); access.allow(video_path)
"""
import os
from dataclasses import dataclass
from pathlib import Path

from omnivideo.errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_auth(text: str) -> tuple[str, str]:
    """'user:password' -> ('user', 'password'); the password may itself contain ':'."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must be user:password (both non-empty)")
    return user, password


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = None
    share: bool = False

    def __post_init__(self):
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 1..65535, got {self.port}")
        if self.exposed and self.auth is None:
            where = "a public share link" if self.share else f"{self.host} (other machines can connect)"
            raise ConfigError(f"refusing to serve on {where} without --auth user:password")

    @property
    def exposed(self) -> bool:
        return self.share or self.host not in LOCAL_HOSTS

    @classmethod
    def from_cli(cls, host: str, port: int, auth: str | None, share: bool) -> "ServeOptions":
        return cls(host=host, port=port, auth=parse_auth(auth) if auth else None, share=share)


class FileAccess:
    """The allow-list of files the server hands out; it grows as the user adds videos."""

    def __init__(self, data_dir: Path):
        data_dir = Path(data_dir).resolve()
        self.videos_dir = data_dir / "videos"
        self.playback_dir = data_dir / "playback"
        self.upload_dir = data_dir / "gradio"
        self.blocked = [str(data_dir / "cache"), str(data_dir / "models")]
        # Gradio keeps a reference to this very list (launch(allowed_paths=...)), so an append here
        # takes effect for the next request without a restart.
        self.paths: list[str] = [str(self.videos_dir), str(self.playback_dir)]

    def use_upload_dir(self) -> None:
        """Point Gradio's upload/temp folder into the data dir; call before the Blocks are built."""
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        os.environ["GRADIO_TEMP_DIR"] = str(self.upload_dir)

    def allow(self, path: str | Path) -> None:
        """Allow serving one video file (never a directory: that would open everything below it)."""
        p = Path(path).resolve()
        if p.is_file() and str(p) not in self.paths:
            self.paths.append(str(p))

    def allows(self, path: str | Path) -> bool:
        p = Path(path).resolve()
        return any(p == Path(a) or Path(a) in p.parents for a in self.paths)
