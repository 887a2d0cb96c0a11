"""Conversations in a model's own chat template: a conversation as training ids with the loss on
its assistant turns, and the prompt that asks for its last reply."""

from __future__ import annotations

ROLES = ("system", "user", "assistant")


class TemplateError(ValueError):
    """The model's chat template does not render a conversation so that its turns can be found."""


def _options(tokenizer) -> dict:
    # Thinking is disabled where the template has the switch (Qwen3), as in chat_prompt.
    return {"enable_thinking": False} if "enable_thinking" in (tokenizer.chat_template or "") else {}


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, **_options(tokenizer)
    )


def last_reply(messages: list[dict]) -> int:
    """The index of a conversation's last assistant turn: the reply a held-out row is scored on."""
    return max(i for i, m in enumerate(messages) if m["role"] == "assistant")


def reply_prompt(tokenizer, messages: list[dict]) -> str:
    """The conversation before its last reply, as training sees it: the rendered conversation up to
    where that reply's text starts. (A template's generation prompt can differ from how it renders
    a reply: the tiny Qwen3 template's adds empty thinking tags that its replies never show.)"""
    k = last_reply(messages)
    turns = messages[: k + 1]
    text = render(tokenizer, turns)
    return text[: assistant_spans(text, turns, "")[-1][0]]


def assistant_spans(text: str, messages: list[dict], turn_end: str) -> list[tuple[int, int]]:
    """Where each assistant turn's content sits in the rendered conversation, with the token that
    ends its turn, so the model learns to stop as the template stops. Found in order after the
    turns before it, so a reply that repeats earlier text is found where it is."""
    spans, cursor = [], 0
    for i, turn in enumerate(messages):
        content = turn["content"]
        at = text.find(content, cursor)
        if at < 0:  # templates that trim a turn's text (Qwen3's strips newlines from replies)
            content = content.strip()
            at = text.find(content, cursor)
        if at < 0:
            raise TemplateError(f"messages[{i}]: the chat template does not render this turn's text as it is")
        cursor = at + len(content)
        if turn["role"] != "assistant":
            continue
        rest = text[cursor:]
        gap = len(rest) - len(rest.lstrip())
        end = cursor + gap + len(turn_end) if turn_end and rest[gap:].startswith(turn_end) else cursor
        spans.append((at, end))
        cursor = end
    return spans


def conversation_ids(tokenizer, messages: list[dict], turn_end: str) -> tuple[list[int], list[int]]:
    """A conversation as (input ids, labels): the whole of it rendered once with the chat template
    (so a template that renders earlier turns differently is honoured), tokenized with offsets,
    each token labelled if it overlaps an assistant turn's text or its turn end, else -100."""
    text = render(tokenizer, messages)
    spans = assistant_spans(text, messages, turn_end)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = list(encoded["input_ids"]), []
    for token, (start, end) in zip(ids, encoded["offset_mapping"]):
        inside = end > start and any(start < b and end > a for a, b in spans)
        labels.append(token if inside else -100)
    if all(label == -100 for label in labels):
        raise TemplateError("no token of an assistant turn was found in the rendered conversation")
    return ids, labels
