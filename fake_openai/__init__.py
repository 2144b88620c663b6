"""A bundled fake OpenAI upstream: a real HTTP server for tests, benchmarks, load tests and the offline demo.

It speaks the OpenAI REST API's wire format (models, chat completions with streaming, tools, reasoning and
structured output, legacy completions, embeddings), answers deterministically, records what it receives and
can misbehave on purpose (scripted faults, see ``Fault``) so the proxy's error handling can be tested
against real sockets rather than mocks.

    async with FakeUpstream() as fake:           # or: with FakeUpstreamThread() as fake: (sync code)
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
        fake.script(Fault("status", status=429))
"""

from ._cli import build_arg_parser_options, config_from_args, main, serve_forever
from ._openai import (
    CONTROL_TOKEN,
    REASONING_PREFIXES,
    expected_embedding,
    expected_logprobs,
    expected_reasoning,
    expected_text,
    is_reasoning_model,
    prompt_tokens_for,
    schema_instance,
)
from ._server import FakeUpstream, FakeUpstreamThread
from ._types import (
    DEFAULT_MODELS,
    FAULT_KINDS,
    FakeConfig,
    Fault,
    FaultKind,
    RecordedRequest,
)
from ._validate import mask_key

__all__ = [
    "CONTROL_TOKEN",
    "DEFAULT_MODELS",
    "FAULT_KINDS",
    "REASONING_PREFIXES",
    "FakeConfig",
    "FakeUpstream",
    "FakeUpstreamThread",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "build_arg_parser_options",
    "config_from_args",
    "expected_embedding",
    "expected_logprobs",
    "expected_reasoning",
    "expected_text",
    "is_reasoning_model",
    "main",
    "mask_key",
    "prompt_tokens_for",
    "schema_instance",
    "serve_forever",
]
