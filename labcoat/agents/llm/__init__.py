"""The LLM brain: a manager that plans with a model, roles that run one shared tool loop, and
the model layer (`models/`: providers, retries, budget, replay, the scripted test double).

    from labcoat.agents.llm.models import ScriptedModel, build_model
"""
