"""The research loop: the `run`/`resume` commands, the async driver, the LangGraph graph and
its steps (plan, work, grade, review, decide), honest grading, and `labcoat doctor`.

    commands   `labcoat run` / `labcoat resume`: set a run up or pick it up, exit codes
    driver     the async part: sandbox provider, brain, graph, signals, summary
    graph      the loop as a LangGraph graph; routing: where the run stands (pure)
    lab        the run's moving parts, shared by the steps
    planning   plan, review, decide, finish, pause;  dispatch: work (a role in its sandbox)
    grading    the honest grader (run, then evaluate with /grader);  results: grade step, commits
    sandboxing an experiment's sandbox specs;  doctor: `labcoat doctor`

    from labcoat.orchestrator.commands import RunOptions, start_run, resume_run
"""
