"""Answers in the chat over a real App (tiny model, real store): streaming with the input off, Stop
(the turn keeps what was said, the cache stays valid), the page going away mid-answer, and the
details line of every answer, also of a resumed session's."""
import gradio as gr
from ui_testkit import clips, ws  # noqa: F401  (pytest fixtures)

from omnivideo.ui.chat import BUSY_PLACEHOLDER, PLACEHOLDER, ChatActions, state_of
from omnivideo.ui.workspace import empty_state

QUESTION = "Tell me everything about the video."


def _stored_answer(ws, session_id) -> tuple[str, list[int], dict]:
    """(text, token ids, result) of a session's last answer, as the store has it."""
    message = ws.app.store.get_session(session_id)["messages"][-1]
    assert message["role"] == "assistant"
    return message["content"], message["meta"]["ids"], message["meta"]["result"]


def test_stop_keeps_the_turn_and_a_valid_cache(ws, clips):
    ws.max_new_tokens = 400
    chat = ws.open("tab", clips[0])
    pieces = []
    for piece in ws.ask(chat, QUESTION, "tab"):
        pieces.append(piece)
        if len(pieces) == 3:
            assert ws.cancel("tab")                              # what Stop does, from the page's thread
    result = chat.last.as_dict()
    assert result["stop_reason"] == "stopped" and 3 <= result["tokens"]["generated"] < 20
    assert chat.turns == [(QUESTION, "".join(pieces))]
    # persisted like any answer: its text, its tokens, its figures
    text, stopped_ids, stored = _stored_answer(ws, chat.session_id)
    assert text == chat.turns[0][1] and len(stopped_ids) == result["tokens"]["generated"]
    assert stored["stop_reason"] == "stopped" and ws.turn_results(chat.session_id) == [stored]
    # greedy decoding: what was said is the start of the whole answer to the same question
    whole = ws.open("tab-2", clips[0])
    list(ws.ask(whole, QUESTION))
    assert _stored_answer(ws, whole.session_id)[1][:len(stopped_ids)] == stopped_ids
    # the cache: the stopped chat holds what a resumed copy replays, and both answer the next question alike
    resumed = ws.resume("tab-3", chat.session_id)
    assert chat.conv.ids + chat.conv.pending == resumed.conv.ids + resumed.conv.pending
    ws.max_new_tokens = 12
    follow_up = "".join(ws.ask(chat, "And then?"))
    assert follow_up and follow_up == "".join(ws.ask(resumed, "And then?"))
    assert [s["num_messages"] for s in ws.sessions() if s["id"] == chat.session_id] == [6]   # both appended


def test_respond_turns_the_input_off_while_it_streams(ws, clips):
    act, request = ChatActions(ws), gr.Request(session_hash="tab")
    assert list(act.respond("   ", [], empty_state(), request)) == [(gr.skip(),) * 5]   # nothing typed
    error = list(act.respond("Hi?", [], empty_state(), request))[-1]
    assert 'class="ov-answer-error">⚠ Error: open a video first' in error[0][-1]["content"]
    assert error[1]["value"] == "Hi?"                            # the question is back in the box

    opened = ws.open("tab", clips[0])
    steps = list(act.respond("What is shown?", [], state_of(opened), request))
    busy = steps[0]
    assert busy[1] == {"__type__": "update", "value": "", "interactive": False, "placeholder": BUSY_PLACEHOLDER}
    assert busy[2]["visible"] is False and busy[3]["visible"] is True          # Send away, Stop in its place
    assert len([s for s in steps if isinstance(s[0], list)]) >= 3              # placeholder, pieces..., final
    final_history, _, _, _, state = steps[-1]
    assert final_history[0] == {"role": "user", "content": "What is shown?"}
    # the details line is in the answer, once: a miss, and the first TTFT includes the ingest
    assert final_history[1]["content"].count('class="ov-details"') == 1
    assert 'class="ov-details">cache miss (video ingested) · TTFT' in final_history[1]["content"]
    assert state == {"video": str(clips[0]), "session_id": opened.session_id}
    message, send, stop = act.idle()                             # what runs after, however it ended
    assert message["interactive"] is True and message["placeholder"] == PLACEHOLDER
    assert send["visible"] is True and stop["visible"] is False


def test_stop_from_the_page_ends_the_stream(ws, clips):
    ws.max_new_tokens = 400
    act, request = ChatActions(ws), gr.Request(session_hash="tab")
    chat = ws.open("tab", clips[1])
    steps = act.respond(QUESTION, [], state_of(chat), request)
    next(steps), next(steps)                                     # the placeholder, then the first piece
    assert act.stop(request) == {"__type__": "update", "interactive": False, "value": "Stopping…"}
    *_, final = steps                                            # the stream finishes by itself
    assert chat.last.stop_reason == "stopped" and chat.last.tokens["generated"] < 400
    assert final[0][-1]["content"].endswith("stopped by you</span>") and not ws.lock.locked()


def test_a_page_leaving_mid_answer_keeps_the_turn_and_frees_the_model(ws, clips):
    ws.max_new_tokens = 400
    chat = ws.open("tab", clips[1])
    steps = ChatActions(ws).respond(QUESTION, [], state_of(chat), gr.Request(session_hash="tab"))
    next(steps), next(steps)                                     # the placeholder, then the first piece
    assert ws.lock.locked()                                      # generating
    steps.close()                                                # what Gradio does when the page goes away
    assert not ws.lock.locked()
    assert chat.last.stop_reason == "stopped" and len(chat.turns) == 1
    assert _stored_answer(ws, chat.session_id)[0] == chat.turns[0][1]
    ws.max_new_tokens = 8
    assert list(ws.ask(chat, "Still there?"))                    # the model is usable again
    assert len(chat.turns) == 2


def test_a_resumed_session_shows_every_answer_with_its_details(ws, clips):
    act, request = ChatActions(ws), gr.Request(session_hash="tab")
    chat = ws.open("tab", clips[0])
    list(ws.ask(chat, "First?"))
    list(ws.ask(chat, "Second?"))
    video_line, _, strip, history, state, tabs, status = act.resume(chat.session_id, gr.Request(session_hash="t2"))
    assert "loaded from the cache" in video_line and strip.count('class="ov-frame"') == 8 and status == ""
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    for message in history[1::2]:
        assert message["content"].count('class="ov-details"') == 1 and "TTFT" in message["content"]
    assert state["session_id"] == chat.session_id and tabs.selected == "chat"
    *_, failed = act.resume(None, request)
    assert "ov-error" in failed and "pick a session first" in failed
