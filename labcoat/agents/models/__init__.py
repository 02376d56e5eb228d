"""Models: the protocol, the managed wrapper, the scripted test double and the factory.

Import-light on purpose: the provider SDKs (anthropic, openai) are imported only by
`build_model` when a spec needs them.
"""

from labcoat.agents.models.base import (
    Message,
    Model,
    ModelReply,
    ModelSettings,
    StopReason,
    ToolCall,
    ToolSpec,
    Usage,
)
from labcoat.agents.models.budget import Budget
from labcoat.agents.models.factory import build_model, parse_model_spec, parse_role_models
from labcoat.agents.models.pricing import ModelPrice, price_for
from labcoat.agents.models.scripted import ScriptedCall, ScriptedModel, text_reply, tool_reply
from labcoat.agents.models.wrapper import ManagedModel, replay_index, request_hash

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
    "replay_index",
    "request_hash",
    "text_reply",
    "tool_reply",
]
