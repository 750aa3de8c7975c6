"""Sessions and their messages persist in the index across store instances."""
import time

import pytest
from storage_testkit import sha

from omnivideo.errors import SessionError
from omnivideo.storage import KVStore


def test_sessions_persist_across_instances(tmp_path):
    with KVStore(tmp_path / "cache") as s:
        sid = s.create_session(sha("video"), "tiny", "lecture", video_path="/v/lecture.mp4", meta={"fps": 2.0})
        assert s.add_message(sid, "user", "What is on the board?") == 0
        assert s.add_message(sid, "assistant", "An integral.", meta={"cache_hit": True, "ttft_s": 0.4}) == 1
    with KVStore(tmp_path / "cache") as s:
        session = s.get_session(sid)
        assert (session["title"], session["video_path"], session["model_id"], session["meta"]) == \
            ("lecture", "/v/lecture.mp4", "tiny", {"fps": 2.0})
        assert [(m["seq"], m["role"], m["content"], m["meta"]) for m in session["messages"]] == [
            (0, "user", "What is on the board?", {}),
            (1, "assistant", "An integral.", {"cache_hit": True, "ttft_s": 0.4}),
        ]
        assert s.add_message(sid, "user", "And after that?") == 2  # multi-turn continues after a restart


def test_list_orders_by_last_update_and_counts_messages(tmp_path):
    with KVStore(tmp_path / "cache") as s:
        first = s.create_session(sha("a"), "tiny", "first")
        time.sleep(0.01)
        second = s.create_session(sha("b"), "tiny", "second")
        time.sleep(0.01)
        s.add_message(first, "user", "hi")
        listed = s.list_sessions()
        assert [(x["id"], x["num_messages"]) for x in listed] == [(first, 1), (second, 0)]
        assert [x["id"] for x in s.list_sessions(video_sha256=sha("b"))] == [second]
        s.sessions.rename(second, "renamed")
        assert s.get_session(second)["title"] == "renamed"


def test_delete_removes_session_and_messages(tmp_path):
    with KVStore(tmp_path / "cache") as s:
        sid = s.create_session(sha("a"), "tiny")
        s.add_message(sid, "user", "hi")
        s.delete_session(sid)
        with pytest.raises(SessionError):
            s.get_session(sid)
        assert s.list_sessions() == []
        assert s.index.rows("select count(*) n from messages")[0]["n"] == 0
        with pytest.raises(SessionError):
            s.delete_session(sid)


@pytest.mark.parametrize("call", [
    lambda s, sid: s.add_message("nope", "user", "hi"),
    lambda s, sid: s.add_message(sid, "robot", "hi"),
    lambda s, sid: s.add_message(sid, "user", ["not", "text"]),
    lambda s, sid: s.add_message(sid, "user", "hi", meta={"t": object()}),
    lambda s, sid: s.create_session("", "tiny"),
], ids=["unknown-session", "bad-role", "non-text", "non-json-meta", "no-video"])
def test_bad_calls_raise_session_error(tmp_path, call):
    with KVStore(tmp_path / "cache") as s:
        sid = s.create_session(sha("a"), "tiny")
        with pytest.raises(SessionError):
            call(s, sid)
        assert s.get_session(sid)["messages"] == []
