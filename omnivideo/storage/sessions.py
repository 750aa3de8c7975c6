"""Chat sessions (a video, a model and its turns) kept in the storage index.

A session names its video by content hash, not by cache entry: entries may be evicted and
recomputed, the conversation survives. Messages are OpenAI-style (role, content) plus a JSON
`meta` (timings, cache hit, anything the app wants to show again after a restart).

    sid = sessions.create(video_sha256=sha, model_id="tiny", title="lecture 3", video_path=path)
    sessions.add_message(sid, "user", "What is on the whiteboard?")
    sessions.get(sid)["messages"]     # [{"role": "user", "content": ..., "meta": {}, ...}]
"""
import json
import time
import uuid

from omnivideo.errors import SessionError

from .index import Index

ROLES = ("system", "user", "assistant")


def _json(value: dict | None, what: str) -> str:
    try:
        return json.dumps(value or {}, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise SessionError(f"{what} must be JSON-serializable: {e}") from e


def _decode(row: dict) -> dict:
    out = {k: v for k, v in row.items() if k != "meta_json"}
    out["meta"] = json.loads(row["meta_json"] or "{}")
    return out


class SessionStore:
    def __init__(self, index: Index):
        self.index = index

    def create(self, *, video_sha256: str, model_id: str, title: str = "", video_path: str | None = None,
               key_digest: str | None = None, meta: dict | None = None) -> str:
        """A new empty session; returns its id (32 hex characters)."""
        if not video_sha256 or not model_id:
            raise SessionError("a session needs a video fingerprint and a model id")
        now = time.time()
        row = {
            "id": uuid.uuid4().hex, "title": title, "video_sha256": video_sha256, "video_path": video_path,
            "model_id": model_id, "key_digest": key_digest, "meta_json": _json(meta, "session meta"),
            "created_at": now, "updated_at": now,
        }
        with self.index.write() as db:
            db["sessions"].insert(row)
        return row["id"]

    def _require(self, db, session_id: str) -> None:
        if not list(db.query("select 1 from sessions where id = ?", (session_id,))):
            raise SessionError(f"no session {session_id!r}")

    def add_message(self, session_id: str, role: str, content: str, meta: dict | None = None) -> int:
        """Append a turn; returns its position (0-based) in the session."""
        if role not in ROLES:
            raise SessionError(f"role must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise SessionError(f"message content must be text, got {type(content).__name__}")
        meta_json, now = _json(meta, "message meta"), time.time()
        with self.index.write() as db:
            self._require(db, session_id)
            seq = next(db.query("select count(*) n from messages where session_id = ?", (session_id,)))["n"]
            db["messages"].insert({"session_id": session_id, "seq": seq, "role": role, "content": content,
                                   "meta_json": meta_json, "created_at": now})
            db.execute("update sessions set updated_at = ? where id = ?", (now, session_id))
        return seq

    def get(self, session_id: str) -> dict:
        """The session row (meta decoded) with "messages": its turns in order."""
        rows = self.index.rows("select * from sessions where id = ?", (session_id,))
        if not rows:
            raise SessionError(f"no session {session_id!r}")
        session = _decode(rows[0])
        messages = self.index.rows("select * from messages where session_id = ? order by seq", (session_id,))
        session["messages"] = [_decode(m) for m in messages]
        return session

    def list(self, video_sha256: str | None = None) -> list[dict]:
        """Sessions (without messages, with "num_messages"), most recently updated first."""
        where, params = ("where s.video_sha256 = ?", (video_sha256,)) if video_sha256 else ("", ())
        rows = self.index.rows(
            "select s.*, (select count(*) from messages m where m.session_id = s.id) as num_messages"
            f" from sessions s {where} order by s.updated_at desc", params)
        return [_decode(r) for r in rows]

    def rename(self, session_id: str, title: str) -> None:
        with self.index.write() as db:
            self._require(db, session_id)
            db.execute("update sessions set title = ?, updated_at = ? where id = ?", (title, time.time(), session_id))

    def delete(self, session_id: str) -> None:
        with self.index.write() as db:
            self._require(db, session_id)
            db.execute("delete from messages where session_id = ?", (session_id,))
            db.execute("delete from sessions where id = ?", (session_id,))
