"""The search brain (no LLM): trials from the experiment's `search_space` (a Latin hypercube,
then expected improvement under a Gaussian process), critics that re-grade the leaders with new
seeds.

    from labcoat.agents.search import SearchManager
"""

from labcoat.agents.search.manager import SearchManager, ranked, reference, trial_history
from labcoat.agents.search.propose import propose, show_params
from labcoat.agents.search.space import Trial

__all__ = ["SearchManager", "Trial", "propose", "ranked", "reference", "show_params",
           "trial_history"]
