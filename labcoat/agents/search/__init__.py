"""The search brain (no LLM): Optuna trials from the experiment's `search_space`, critics that
re-grade the leaders with new seeds.

    from labcoat.agents.search import SearchManager
"""

from labcoat.agents.search.manager import SearchManager, ranked, reference, trial_history
from labcoat.agents.search.propose import Trial, propose, show_params

__all__ = ["SearchManager", "Trial", "propose", "ranked", "reference", "show_params",
           "trial_history"]
