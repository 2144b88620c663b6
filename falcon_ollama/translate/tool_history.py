"""Tool-call histories as chat completions accepts them. Pure functions, shared by the request translators.

Ollama (and the Anthropic and Responses dialects it serves) accepts a history where a tool call got no result
(the user interrupted it: Claude Code then sends plain text) or a result answers no call; the chat
completions API refuses both with a 400. An unanswered call is closed with an empty result where its result
would have been; a result that answers no call is kept as user text, so the model still reads it.
"""

from __future__ import annotations

from collections import deque
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
    # ids of the last assistant message's calls not answered yet (a dict: in order, each found in O(1))
    pending: dict[str, None] = {}
    orphans: list[ChatMessage] = []
    for message in messages:
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id", "")
            if call_id in pending:
                del pending[call_id]
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
            pending = dict.fromkeys(call["id"] for call in calls)
    _flush(out, pending, orphans)
    return out


def _flush(out: list[ChatMessage], pending: dict[str, None], orphans: list[ChatMessage]) -> None:
    out.extend(unanswered_results(pending))
    out.extend(orphans)
    pending.clear()
    orphans.clear()


class PendingCalls:
    """The calls of the last assistant message that no result has answered yet, in order, each found by id
    or by name in O(1): a history of thousands of calls and results must not hold a worker's loop for
    seconds (a list searched per result did: 2.6 s for 9,990 of each, answered in reverse)."""

    __slots__ = ("_by_name", "_names", "_order")

    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # id -> name, of the calls still unanswered
        self._order: deque[str] = deque()  # ids in call order; answered ones are skipped when met
        self._by_name: dict[str, deque[str]] = {}

    def __bool__(self) -> bool:
        return bool(self._names)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._names

    def reset(self, calls: Iterable[tuple[str, str]]) -> None:
        """A new assistant message's calls (id, name) replace the previous ones."""
        self._names = dict(calls)
        self._order = deque(self._names)
        self._by_name = {}
        for call_id, name in self._names.items():
            self._by_name.setdefault(name, deque()).append(call_id)

    def take(self, call_id: str) -> bool:
        """Whether ``call_id`` was unanswered (it is answered now)."""
        return self._names.pop(call_id, None) is not None

    def take_named(self, name: str) -> str | None:
        """The first unanswered call of tool ``name`` (answered now), if any."""
        ids = self._by_name.get(name)
        while ids:
            call_id = ids.popleft()
            if self._names.pop(call_id, None) is not None:
                return call_id
        return None

    def take_first(self) -> str | None:
        """The first unanswered call (answered now), if any."""
        order = self._order
        while order:
            call_id = order.popleft()
            if self._names.pop(call_id, None) is not None:
                return call_id
        return None

    def drain(self) -> list[str]:
        """The unanswered calls' ids, in order; none is left."""
        ids = list(self._names)
        self.reset(())
        return ids
