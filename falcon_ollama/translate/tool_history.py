"""Tool-call histories as chat completions accepts them. Pure functions, shared by the request translators.

Ollama (and the Anthropic and Responses dialects it serves) accepts a history where a tool call got no result
(the user interrupted it: Claude Code then sends plain text) or a result answers no call; the chat
completions API refuses both with a 400. An unanswered call is closed with an empty result where its result
would have been; a result that answers no call is kept as user text, so the model still reads it.
"""

from __future__ import annotations

from collections.abc import Iterable

from falcon_ollama.openai_types import ChatMessage


def unanswered_results(call_ids: Iterable[str]) -> list[ChatMessage]:
    """Empty results closing calls nothing answered (chat completions wants a result for every call)."""
    return [{"role": "tool", "tool_call_id": call_id, "content": ""} for call_id in call_ids]


def orphan_result(call_id: str, text: str) -> ChatMessage:
    """A result for a call the history does not contain, as user text (an orphan tool message is refused)."""
    return {"role": "user", "content": f"Tool result ({call_id}):\n{text}"}


def pair_tool_results(messages: list[ChatMessage]) -> list[ChatMessage]:
    """``messages`` with every tool call answered right after its assistant message and every tool message
    answering a call: unanswered calls closed (:func:`unanswered_results`), orphan results made user text
    (:func:`orphan_result`) after the run of tool messages they came in. A history already paired comes back
    equal."""
    out: list[ChatMessage] = []
    pending: list[str] = []  # ids of the last assistant message's calls not answered yet
    orphans: list[ChatMessage] = []
    for message in messages:
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id", "")
            if call_id in pending:
                pending.remove(call_id)
                out.append(message)
            else:
                content = message.get("content")
                orphans.append(orphan_result(call_id, content if isinstance(content, str) else ""))
            continue
        if pending or orphans:
            _flush(out, pending, orphans)
        out.append(message)
        calls = message.get("tool_calls")
        if calls:
            pending = [call["id"] for call in calls]
    _flush(out, pending, orphans)
    return out


def _flush(out: list[ChatMessage], pending: list[str], orphans: list[ChatMessage]) -> None:
    out.extend(unanswered_results(pending))
    out.extend(orphans)
    pending.clear()
    orphans.clear()
