"""A trace document drawn as a lineage graph: inline SVG, laid out in columns on the server.

Sources and principals on the left, the contributions they brought in, the gates that judged them
and the records traced, the versions they went into on the right. Every node links to its own
trace, so the graph is navigable with the keyboard (SVG links take focus), and the same edges are
listed as text beside it for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 210, 52, 80, 18, 16
COLUMNS = ("origin", "contribution", "judgement", "version", "model")


@dataclass
class Node:
    """One box of the graph."""

    id: str
    column: int
    title: str
    detail: str = ""
    kind: str = "contribution"
    ref: str | None = None
    """What the node's link traces (None: not traceable, e.g. a gate run)."""


@dataclass
class Graph:
    """Nodes and labelled edges, in insertion order (the layout keeps it)."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, a: str, b: str, label: str) -> None:
        if (a, b, label) not in self.edges:
            self.edges.append((a, b, label))


def build_graph(trace: dict[str, Any]) -> Graph:
    """The lineage graph of a ``trace`` document (record, contribution, version, key, principal, source,
    model)."""
    subject = trace.get("subject") or {}
    if subject.get("kind") == "model":
        return _model_graph(trace)
    g = Graph()
    record_node = None
    if subject.get("kind") == "record":
        rid = str(subject.get("id", ""))
        record_node = g.add(Node(f"r:{rid}", 2, "record", rid[:16], "record", rid))
    listed = trace.get("versions") or []
    if subject.get("kind") == "version":
        # A version holds exactly its own contributions; the other versions listed hold some of them,
        # and linking every contribution to each would draw merges that never happened.
        listed = [subject]
    versions = [
        g.add(
            Node(
                f"v:{v.get('ref')}",
                3,
                str(v.get("ref")),
                f"{v.get('stage', '')} · {v.get('records', '')} records",
                "version",
                str(v.get("ref")),
            )
        )
        for v in listed
    ]
    for c in trace.get("contributions") or []:
        ref = str(c.get("ref"))
        approvals = c.get("approvals") or []
        detail = f"{c.get('status', '')}" + (f" · {len(approvals)} approval(s)" if approvals else "")
        cid = g.add(Node(f"c:{ref}", 1, ref, detail, "contribution", ref))
        source = (c.get("source") or {}).get("uri")
        if source:
            sid = g.add(Node(f"s:{source}", 0, "source", str(source), "source", f"source:{source}"))
            g.link(sid, cid, "fetched from")
        if c.get("submitted_by"):
            who = str(c["submitted_by"])
            pid = g.add(
                Node(
                    f"p:{who}", 0, who, f"{c.get('kind', '')} · key {c.get('key', '')}", "principal", f"principal:{who}"
                )
            )
            g.link(pid, cid, f"submitted with {c.get('key', '')}")
        for gate in c.get("gates") or []:
            gid = g.add(
                Node(
                    f"g:{gate.get('run')}",
                    2,
                    f"gate: {gate.get('verdict', '')}",
                    f"{gate.get('flagged', 0)} flagged",
                    f"gate-{gate.get('verdict', 'unknown')}",
                    None,
                )
            )
            g.link(cid, gid, "judged by")
        if record_node is not None:
            review = c.get("review") or {}
            g.link(cid, record_node, f"brought in (review: {review['status']})" if review else "brought in")
        if c.get("status") in ("merged", "quarantined") or subject.get("kind") == "version":
            for vid in versions:
                g.link(cid, vid, "merged into")
    for key in ("derived_from", "origins", "derived"):
        for item in trace.get(key) or []:
            rid = str(item.get("record_id") or item.get("id") or item) if isinstance(item, dict) else str(item)
            other = g.add(Node(f"r:{rid}", 2, "record", rid[:16], "record", rid))
            if record_node is not None and other != record_node:
                if key == "derived":
                    g.link(record_node, other, "made into")
                else:
                    g.link(other, record_node, "made into" if key == "derived_from" else "origin of")
    return g


def _model_graph(trace: dict[str, Any]) -> Graph:
    """A model version's lineage: the graph of each dataset version it was trained on (traced as a
    version is), each version linked to the model."""
    g = Graph()
    m = trace.get("subject") or {}
    ref = str(m.get("ref"))
    detail = f"{m.get('stage', '')} · trained by {m.get('trained_by', '')}" + (
        " · affected" if m.get("affected") else ""
    )
    model = g.add(Node(f"m:{ref}", 4, ref, detail, "model", f"model:{ref}"))
    for data in trace.get("datasets") or []:
        part = build_graph(data)
        for node in part.nodes.values():
            g.add(node)
        for edge in part.edges:
            g.link(*edge)
        g.link(f"v:{(data.get('subject') or {}).get('ref')}", model, "trained")
    return g


def render_svg(graph: Graph, *, title: str) -> Markup:
    """The graph as an accessible inline SVG (safe to embed: every text is escaped)."""
    columns: list[list[Node]] = [[] for _ in COLUMNS]
    for node in graph.nodes.values():
        columns[node.column].append(node)
    used = [i for i, col in enumerate(columns) if col]
    x_of = {col: PAD + n * (NODE_W + COL_GAP) for n, col in enumerate(used)}
    pos: dict[str, tuple[int, int]] = {}
    for col in used:
        for row, node in enumerate(columns[col]):
            pos[node.id] = (x_of[col], PAD + 24 + row * (NODE_H + ROW_GAP))
    width = PAD * 2 + len(used) * NODE_W + max(len(used) - 1, 0) * COL_GAP
    height = PAD * 2 + 24 + max((len(c) for c in columns), default=0) * (NODE_H + ROW_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" aria-labelledby="lineage-title" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<title id="lineage-title">{escape(title)}</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>',
    ]
    for col in used:
        parts.append(f'<text class="column-title" x="{x_of[col]}" y="{PAD + 10}">{COLUMNS[col]}</text>')
    for a, b, label in graph.edges:
        (ax, ay), (bx, by) = pos[a], pos[b]
        x1, y1, x2, y2 = ax + NODE_W, ay + NODE_H // 2, bx, by + NODE_H // 2
        if bx <= ax:  # same column (record to record): loop around the right side
            x2 = bx + NODE_W
            mid = max(x1, x2) + 40
            d = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
        else:
            mid = (x1 + x2) / 2
            d = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 2},{y2}"
        parts.append(f'<path class="edge" d="{d}" marker-end="url(#arrow)"><title>{escape(label)}</title></path>')
    for node in graph.nodes.values():
        x, y = pos[node.id]
        box = (
            f'<rect class="node node-{escape(node.kind)}" x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text class="node-title" x="{x + 10}" y="{y + 21}">{escape(_fit(node.title, 28))}</text>'
            f'<text class="node-detail" x="{x + 10}" y="{y + 40}">{escape(_fit(node.detail, 32))}</text>'
        )
        label = escape(f"{node.title}: {node.detail}" if node.detail else node.title)
        if node.ref:
            href = "/console/lineage?ref=" + quote(node.ref, safe="")
            parts.append(f'<a href="{href}" aria-label="trace {label}"><title>{label}</title>{box}</a>')
        else:
            parts.append(f"<g><title>{label}</title>{box}</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def edge_list(graph: Graph) -> list[tuple[str, str, str]]:
    """The edges as (from, relation, to) text, the graph's accessible twin."""

    def name(node_id: str) -> str:
        node = graph.nodes[node_id]
        return f"{node.title} ({node.detail})" if node.detail else node.title

    return [(name(a), label, name(b)) for a, b, label in graph.edges]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
