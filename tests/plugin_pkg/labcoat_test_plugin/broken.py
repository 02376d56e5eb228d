"""A plugin module that cannot be imported (its entry point must fail only its own subtasks)."""

raise ImportError("labcoat_test_plugin.broken is broken on purpose (needs a missing library)")
