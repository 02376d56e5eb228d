"""`labcoat doctor --cluster ADDRESS` and `labcoat sandbox cleanup --cluster ADDRESS`: every node.

Both join the cluster for the length of the command, run a small task pinned to each node that
advertises `labcoat_sandbox` (`nodes.check_node`, `nodes.sweep_node`, `nodes.build_on_node`) and
leave. The doctor says, per node, whether its Docker engine answers, whether labcoat's image is
there (and builds it there with `--build`) and what Ray has free on it.
"""

from __future__ import annotations

import asyncio

import labcoat
from labcoat.sandboxes.ray import address as addr
from labcoat.sandboxes.ray import nodes as nd
from labcoat.sandboxes.ray.host import node_name
from labcoat.sandboxes.ray.sandbox import awaited

GIB = 1024**3


def doctor_lines(address: str, image: str, *, build: bool = False) -> tuple[list[str], bool]:
    """One line per node (and its fix when it may not hold sandboxes); whether every node may."""
    target = addr.normalize(address) or "auto"
    joined = addr.connect(target)
    try:
        reports = asyncio.run(_checked(image, build))
    finally:
        if joined:
            addr.disconnect()
    if not reports:
        return [f"[FAIL] cluster {address}: no live node advertises the `{nd.RESOURCE}` "
                f"resource", f"       fix: on each node, `ray start --address HEAD:PORT "
                f"--resources '{{\"{nd.RESOURCE}\": 4}}'`"], False
    lines = [f"[ok  ] cluster {address}: {len(reports)} node(s) offer sandboxes"]
    for report in reports:
        lines += _node_lines(report)
    return lines, all(r.problem(labcoat.__version__) is None for r in reports)


async def _checked(image: str, build: bool) -> list[nd.NodeReport]:
    reports = await nd.check_all(image, None, sweep=False)
    missing = [r.node.node_id for r in reports if r.image_present is False]
    if not (build and missing):
        return reports
    await asyncio.gather(*(awaited(nd.on_node(nd.build_on_node, node_id, False))
                           for node_id in missing), return_exceptions=True)
    return await nd.check_all(image, None, sweep=False)


def _node_lines(report: nd.NodeReport) -> list[str]:
    problem = report.problem(labcoat.__version__)
    where = f"node {report.node.name} ({report.node.address or '?'})"
    if problem is not None:
        return [f"[FAIL] {where}: may not hold sandboxes: {problem.split('; fix: ')[0]}",
                f"       fix: {_fix(problem)}"]
    return [f"[ok  ] {where}: Docker {report.docker_version}, image {report.image} present; "
            f"free {_resources(report)}"]


def _fix(problem: str) -> str:
    if "; fix: " in problem:
        return problem.split("; fix: ", 1)[1]
    return "start Docker on that node (`docker info` must answer as the user Ray runs as)"


def _resources(report: nd.NodeReport) -> str:
    free, total = report.free or report.total, report.total
    parts = [f"{free.get(nd.RESOURCE, 0):g}/{total.get(nd.RESOURCE, 0):g} sandboxes",
             f"{free.get('CPU', 0):g}/{total.get('CPU', 0):g} CPUs",
             f"{free.get('memory', 0) / GIB:.1f}/{total.get('memory', 0) / GIB:.1f} GiB"]
    if total.get("GPU"):
        parts.append(f"{free.get('GPU', 0):g}/{total['GPU']:g} GPUs")
    return ", ".join(parts)


def cleanup_all(address: str, run_id: str | None = None) -> str:
    """Remove `run_id`'s containers on every node, or every node's orphans; say how many."""
    target = addr.normalize(address) or "auto"
    joined = addr.connect(target)
    try:
        counts = asyncio.run(_swept(run_id))
    finally:
        if joined:
            addr.disconnect()
    what = f"container(s) of run {run_id}" if run_id else "orphaned labcoat container(s)"
    failed = [name for name, n in counts.items() if n is None]
    text = (f"removed {sum(n or 0 for n in counts.values())} {what} on {len(counts)} node(s) "
            f"of the cluster {address}")
    if failed:
        text += f"; nodes whose Docker engine did not answer: {', '.join(failed)}"
    return text


async def _swept(run_id: str | None) -> dict[str, int | None]:
    entries = await asyncio.to_thread(nd.sandbox_nodes)
    refs = [nd.on_node(nd.sweep_node, n["NodeID"], run_id) for n in entries]
    found = await asyncio.gather(*(awaited(r) for r in refs), return_exceptions=True)
    return {node_name(str(n.get("NodeManagerHostname", "?")), n["NodeID"]):
            (c if isinstance(c, int) else None) for n, c in zip(entries, found, strict=True)}
