"""Models: the protocol, the managed wrapper, the scripted test double and the factory.

Import-light on purpose: the provider SDKs (anthropic, openai) are imported only by
`build_model` when a spec needs them.
"""

from labcoat.agents.llm.models.budget import Budget
from labcoat.agents.llm.models.factory import build_model, parse_role_models
from labcoat.agents.llm.models.pricing import ModelPrice, price_for
from labcoat.agents.llm.models.scripted import ScriptedCall, ScriptedModel, text_reply, tool_reply
from labcoat.agents.llm.models.wrapper import ManagedModel, request_hash
from labcoat.agents.llm.providers import parse_model_spec
from labcoat.agents.model import (
    Message,
    Model,
    ModelReply,
    ModelSettings,
    StopReason,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "Budget",
    "ManagedModel",
    "Message",
    "Model",
    "ModelPrice",
    "ModelReply",
    "ModelSettings",
    "ScriptedCall",
    "ScriptedModel",
    "StopReason",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "build_model",
    "parse_model_spec",
    "parse_role_models",
    "price_for",
    "request_hash",
    "text_reply",
    "tool_reply",
]
