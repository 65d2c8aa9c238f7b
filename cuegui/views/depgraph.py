"""The dependency picture of a job: its layers as boxes, what they wait for as arrows.

Layers are placed in columns by depth (a layer sits right of everything it waits for); other
jobs' layers a layer waits for get dashed boxes on the left, and other jobs' layers waiting for
this job (its dependants) dashed boxes on the right.  An arrow runs from what is waited for to
the layer that waits: solid while it holds, dashed once satisfied, dotted frame by frame, and
labelled with its kind; a legend says so.  Arrows are selectable, for the satisfy and drop
actions.  Boxes show the layer's progress and take the
colour of its most telling state (dead, running, waiting on a dependency, done).
"""

from __future__ import annotations

import math
from typing import Any

from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QBrush, QColor, QFontMetrics, QPainter, QPainterPath, QPen, QPolygonF
from qtpy.QtWidgets import (QGraphicsItem, QGraphicsPathItem, QGraphicsScene, QGraphicsView,
                            QMenu)

from cuegui import theme

MIN_SCALE = 0.8


def layer_colour(layer: dict) -> str:
    """The state that best sums a layer up, as a frame state colour."""
    total = layer.get("frames_total") or 0
    if layer.get("dead"):
        return theme.FRAME_COLORS["DEAD"]
    if layer.get("running"):
        return theme.FRAME_COLORS["RUNNING"]
    succeeded, eaten = layer.get("succeeded") or 0, layer.get("eaten") or 0
    if total and succeeded >= total:
        return theme.FRAME_COLORS["SUCCEEDED"]
    if total and succeeded + eaten >= total:
        # Finished, but not all rendered: eaten (given up on, or killed with the job).
        return theme.FRAME_COLORS["EATEN"]
    if layer.get("depend"):
        return theme.FRAME_COLORS["DEPEND"]
    return theme.FRAME_COLORS["WAITING"]


def edges_of(layers: list[dict], deps: list[dict]) -> list[dict]:
    """Edges as dependency rows: the supervisor's when given, else from the layers' specs."""
    if deps:
        return deps
    out = []
    for layer in layers:
        for d in layer.get("depends_on") or []:
            if isinstance(d, str):
                d = {"layer": d}
            if not isinstance(d, dict):
                continue
            out.append({"id": None, "layer": layer.get("name"), "satisfied": False,
                        "kind": "frame" if d.get("per_frame") else
                        ("job" if d.get("job") is not None else "layer"),
                        "target_job_id": d.get("job"), "target_layer": d.get("layer")})
    return out


def node_key(dep: dict, job_id: Any) -> str:
    """The box an edge starts from: a layer of this job, or another job (and layer)."""
    other = dep.get("target_job_id")
    if other is not None and other != job_id:
        return f"job:{other}:{dep.get('target_layer') or ''}"
    return f"layer:{dep.get('target_layer')}"


def depths(layers: list[dict], edges: list[dict], job_id: Any) -> dict[str, int]:
    """Column of every box: other jobs at 0, a layer one right of what it waits for."""
    waits: dict[str, list[str]] = {f"layer:{l.get('name')}": [] for l in layers}
    for e in edges:
        waits.setdefault(f"layer:{e.get('layer')}", []).append(node_key(e, job_id))
    out: dict[str, int] = {}

    def depth(key: str, seen: frozenset = frozenset()) -> int:
        if key in out:
            return out[key]
        if key.startswith("job:"):
            out[key] = 0
            return 0
        if key in seen:          # a cycle cannot be submitted, but never loop on one
            return 1
        d = 1 + max((depth(t, seen | {key}) for t in waits.get(key, [])), default=0)
        out[key] = d
        return d
    for key in list(waits):
        depth(key)
    for e in edges:
        depth(node_key(e, job_id))
    return out


class Edge(QGraphicsPathItem):
    def __init__(self, dep: dict):
        super().__init__()
        self.dep = dep
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, dep.get("id") is not None)
        self.setZValue(-1)
        if dep.get("dependant"):
            tip = (f"job {dep.get('job_id')} {dep.get('job_name') or ''} / {dep.get('layer')} "
                   f"waits for " + (f"layer {dep.get('target_layer')}" if dep.get("target_layer")
                                    else "this whole job"))
            tip += " frame by frame" if dep.get("kind") == "frame" else ""
        else:
            tip = f"{dep.get('layer')} waits for " + _target_text(dep)
        tip += " (satisfied)" if dep.get("satisfied") else ""
        self.setToolTip(tip)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        colour = QColor(theme.chrome("GRAPH_EDGE"))
        if not self.dep.get("satisfied"):
            colour = QColor(theme.FRAME_COLORS["DEPEND"])
        pen = QPen(colour, 3 if self.isSelected() else 1.6)
        if self.dep.get("satisfied"):
            pen.setStyle(Qt.PenStyle.DashLine)
        elif self.dep.get("kind") == "frame":
            pen.setStyle(Qt.PenStyle.DotLine)
        if self.isSelected():
            pen.setColor(QColor(theme.chrome("SELECTION")).lighter(150))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
        # The arrow head at the waiting end.
        path = self.path()
        end = path.pointAtPercent(1.0)
        before = path.pointAtPercent(0.96)
        angle = math.atan2(end.y() - before.y(), end.x() - before.x())
        size = 9.0
        head = QPolygonF([end, end - QPointF(math.cos(angle - 0.45) * size,
                                             math.sin(angle - 0.45) * size),
                          end - QPointF(math.cos(angle + 0.45) * size,
                                        math.sin(angle + 0.45) * size)])
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(pen.color())
        painter.drawPolygon(head)

    def shape(self) -> QPainterPath:
        # A wider outline than the line itself, so the arrow is easy to click.
        from qtpy.QtGui import QPainterPathStroker
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())


def _target_text(dep: dict) -> str:
    job, layer = dep.get("target_job_id"), dep.get("target_layer")
    if job is not None:
        return f"job {job}" + (f" / {layer}" if layer else "")
    return f"layer {layer}" + (" frame by frame" if dep.get("kind") == "frame" else "")


KIND_TEXT = {"job": "job", "layer": "layer", "frame": "per frame"}


def fetch_dependencies(client, job_id: Any) -> list[dict]:
    """What a job's layers wait for, then what waits on the job (rows marked `dependant`);
    a supervisor that cannot list dependants gives only the first."""
    from cuefarm import CueFarmError
    from cuefarm.client import Unreachable
    deps = client.dependencies(job_id)
    try:
        theirs = client.dependants(job_id)
    except Unreachable:
        raise
    except (CueFarmError, AttributeError):
        theirs = []
    return list(deps) + [{**r, "dependant": True} for r in theirs
                         if r.get("job_id") != job_id]


def dependant_key(dep: dict) -> str:
    """The box of another job's layer waiting for this job."""
    return f"out:{dep.get('job_id')}:{dep.get('layer') or ''}"


class DependencyGraph(QGraphicsView):
    """Shows one job's layers and dependencies; `show_job` rebuilds, `update_layers` recolours."""

    selection_changed = Signal()
    layer_activated = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setMinimumHeight(theme.scaled(90, self))
        self.job_id: Any = None
        self.jobs: dict[Any, dict] = {}            # other jobs by id, for their names
        self.layers: list[dict] = []
        self.deps: list[dict] = []
        self._structure: tuple = ()
        self.context_actions: list = []
        self.scene().selectionChanged.connect(self.selection_changed)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.empty_text = "No job selected"

    # -- data -------------------------------------------------------------------------------------

    def show_job(self, job_id: Any, layers: list[dict], deps: list[dict]) -> None:
        self.job_id, self.layers, self.deps = job_id, list(layers), list(deps)
        self._rebuild()

    def update_layers(self, layers: list[dict]) -> None:
        """New figures for the layers: redraw, rebuilding only if the shape changed."""
        self.layers = list(layers)
        self._rebuild()

    def set_dependencies(self, deps: list[dict]) -> None:
        self.deps = list(deps)
        self._rebuild()

    def selected_dependency(self) -> dict | None:
        for item in self.scene().selectedItems():
            if isinstance(item, Edge):
                return item.dep
        return None

    def select_dependency(self, dep_id: Any) -> bool:
        """Select the arrow of one dependency (only it); False when there is none."""
        self.scene().clearSelection()
        for edge in self.edges():
            if edge.dep.get("id") == dep_id:
                edge.setSelected(True)
                return True
        return False

    def edges(self) -> list[Edge]:
        return [i for i in self.scene().items() if isinstance(i, Edge)]

    # -- drawing ----------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        every = edges_of(self.layers, self.deps)
        edges = [e for e in every if not e.get("dependant")]
        theirs = [e for e in every if e.get("dependant")]
        structure = (self.job_id, tuple(l.get("name") for l in self.layers),
                     tuple((e.get("id"), e.get("layer"), node_key(e, self.job_id),
                            bool(e.get("satisfied")), bool(e.get("dependant")))
                           for e in every), theme.current)
        figures = tuple((l.get("succeeded"), l.get("running"), l.get("dead"), l.get("depend"),
                         l.get("frames_total")) for l in self.layers)
        if structure == self._structure and figures == getattr(self, "_figures", None):
            return
        selected = self.selected_dependency()
        self._structure, self._figures = structure, figures
        scene = self.scene()
        scene.clear()
        if not self.layers:
            return
        fm = QFontMetrics(self.font())
        line = fm.height()
        names = {e.get("job_id"): e.get("job_name") for e in theirs}
        texts = [str(l.get("name")) for l in self.layers] + ["000000 / 000000", "whole job"]
        for e in edges:
            if node_key(e, self.job_id).startswith("job:"):
                other = self.jobs.get(e.get("target_job_id")) or {}
                texts += [str(other.get("name") or f"job {e.get('target_job_id')}"),
                          str(e.get("target_layer") or "")]
        for e in theirs:
            texts += [str(e.get("job_name") or f"job {e.get('job_id')}"), str(e.get("layer"))]
        # Every box is as wide as the longest text any box holds, plus its margins.
        width = max(fm.horizontalAdvance(t) for t in texts) + line * 1.5
        height = line * 2.9
        gap_x, gap_y = line * 4.5, line * 1.2
        column = depths(self.layers, edges, self.job_id)
        boxes: dict[str, QRectF] = {}
        per_column: dict[int, int] = {}
        keys = [f"layer:{l.get('name')}" for l in self.layers]
        keys += sorted({node_key(e, self.job_id) for e in edges} - set(keys))
        last = max([column.get(k, 1) for k in keys] + [1])
        keys += sorted({dependant_key(e) for e in theirs})
        for key in keys:
            c = last + 1 if key.startswith("out:") else column.get(key, 1)
            r = per_column.get(c, 0)
            per_column[c] = r + 1
            boxes[key] = QRectF(c * (width + gap_x), r * (height + gap_y), width, height)
        by_name = {f"layer:{l.get('name')}": l for l in self.layers}
        for key, rect in boxes.items():
            self._box(key, rect, by_name.get(key), line, names)
        sinks = [k for k in by_name if column.get(k, 1) == last] or list(by_name)
        pairs = [(node_key(e, self.job_id), f"layer:{e.get('layer')}", e) for e in edges]
        for e in theirs:
            starts = [f"layer:{e['target_layer']}"] if e.get("target_layer") else sinks
            pairs += [(start, dependant_key(e), e) for start in starts]
        for a_key, b_key, e in pairs:
            a, b = boxes.get(a_key), boxes.get(b_key)
            if a is None or b is None:
                continue
            start, end = QPointF(a.right(), a.center().y()), QPointF(b.left(), b.center().y())
            path = QPainterPath(start)
            dx = max(30.0, (end.x() - start.x()) / 2)
            path.cubicTo(start + QPointF(dx, 0), end - QPointF(dx, 0), end)
            edge = Edge(e)
            edge.setPath(path)
            scene.addItem(edge)
            self._label(edge, line)
            if selected is not None and e.get("id") == selected.get("id") \
                    and bool(e.get("dependant")) == bool(selected.get("dependant")):
                edge.setSelected(True)
        if pairs:
            bottom = max(r.bottom() for r in boxes.values())
            self._legend(QPointF(0, bottom + line * 1.2), line)
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-line, -line, line, line))
        self._fit()

    LEGEND = (("holds", Qt.PenStyle.SolidLine, "DEPEND"),
              ("satisfied", Qt.PenStyle.DashLine, "EDGE"),
              ("frame by frame", Qt.PenStyle.DotLine, "DEPEND"),
              ("another job", None, "EDGE"))

    def _legend(self, at: QPointF, line: float) -> None:
        """What the lines and dashed boxes mean, in two columns under the boxes (part of the
        picture, so it never covers a box)."""
        scene = self.scene()
        fm = QFontMetrics(self.font())
        sample = line * 2.0
        column = sample + line * 0.6 + max(fm.horizontalAdvance(t) for t, _, _ in self.LEGEND)
        for i, (text, style, colour) in enumerate(self.LEGEND):
            x = at.x() + (i % 2) * (column + line * 1.5)
            y = at.y() + (i // 2) * line * 1.3
            mid = y + line / 2
            c = QColor(theme.FRAME_COLORS["DEPEND"] if colour == "DEPEND"
                       else theme.chrome("GRAPH_EDGE"))
            if style is None:
                scene.addRect(QRectF(x, y + line * 0.1, sample, line * 0.8),
                              QPen(c, 1.2, Qt.PenStyle.DashLine))
            else:
                scene.addLine(x, mid, x + sample, mid, QPen(c, 1.6, style))
            label = scene.addSimpleText(text)
            label.setBrush(QColor(theme.chrome("CAPTION")))
            label.setPos(x + sample + line * 0.6, y + (line - label.boundingRect().height()) / 2)

    def _label(self, edge: "Edge", line: float) -> None:
        """The edge's kind, on a patch of the background at the middle of its curve."""
        text = KIND_TEXT.get(str(edge.dep.get("kind")), str(edge.dep.get("kind") or ""))
        if not text:
            return
        scene = self.scene()
        label = scene.addSimpleText(text)
        font = label.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        label.setFont(font)
        label.setBrush(QColor(theme.chrome("CAPTION")))
        box = label.boundingRect()
        mid = edge.path().pointAtPercent(0.5)
        label.setPos(mid.x() - box.width() / 2, mid.y() - box.height() - line * 0.15)
        patch = scene.addRect(label.sceneBoundingRect().adjusted(-2, 0, 2, 0),
                              QPen(Qt.PenStyle.NoPen), QBrush(self.palette().base().color()))
        patch.setZValue(-0.5)
        label.setZValue(-0.4)

    def _box(self, key: str, rect: QRectF, layer: dict | None, line: float,
             names: dict | None = None) -> None:
        scene = self.scene()
        text_colour = self.palette().text().color()
        if layer is None:       # another job's layer
            kind, job, name = key.split(":", 2)
            other = self.jobs.get(int(job)) if job.isdigit() else None
            pen = QPen(QColor(theme.chrome("GRAPH_EDGE")), 1.2, Qt.PenStyle.DashLine)
            item = scene.addRect(rect, pen, QBrush(Qt.BrushStyle.NoBrush))
            known = (names or {}).get(int(job)) if job.isdigit() else None
            label = (other.get("name") if other else None) or known or f"job {job}"
            title = scene.addSimpleText(f"{label}")
            title.setBrush(text_colour)
            title.setPos(rect.left() + line * 0.5, rect.top() + line * 0.3)
            sub = scene.addSimpleText(name or "whole job")
            sub.setBrush(QColor(theme.chrome("CAPTION")))
            sub.setPos(rect.left() + line * 0.5, rect.top() + line * 1.4)
            item.setToolTip(f"job {job}: {label}" + (f" / {name}" if name else "")
                            + (" (waits for this job)" if kind == "out" else ""))
            return
        colour = QColor(layer_colour(layer))
        item = scene.addRect(rect, QPen(colour, 2), QBrush(self.palette().base().color()))
        item.setToolTip(f"{layer.get('name')}: {layer.get('succeeded') or 0} of "
                        f"{layer.get('frames_total') or 0} succeeded, "
                        f"{layer.get('running') or 0} running, {layer.get('dead') or 0} dead, "
                        f"{layer.get('eaten') or 0} eaten")
        item.setData(0, layer.get("name"))
        title = scene.addSimpleText(str(layer.get("name")))
        title.setBrush(text_colour)
        title.setPos(rect.left() + line * 0.5, rect.top() + line * 0.25)
        total = layer.get("frames_total") or 0
        done = layer.get("succeeded") or 0
        eaten = layer.get("eaten") or 0
        bar = QRectF(rect.left() + line * 0.5, rect.top() + line * 1.45,
                     rect.width() - line, line * 0.4)
        scene.addRect(bar, QPen(Qt.PenStyle.NoPen), QBrush(QColor(theme.chrome("TROUGH"))))
        if total:
            x = bar.left()
            for count, state in ((done, "SUCCEEDED"), (eaten, "EATEN"),
                                 (layer.get("dead") or 0, "DEAD"),
                                 (layer.get("running") or 0, "RUNNING")):
                w = bar.width() * min(count, total) / total
                if w > 0:
                    scene.addRect(QRectF(x, bar.top(), w, bar.height()), QPen(Qt.PenStyle.NoPen),
                                  QBrush(QColor(theme.FRAME_COLORS[state])))
                    x += w
        counts = scene.addSimpleText(f"{done} / {total}" + (f" · {eaten} eaten" if eaten
                                                              else ""))
        counts.setBrush(QColor(theme.chrome("CAPTION")))
        counts.setPos(rect.left() + line * 0.5, rect.top() + line * 1.85)

    def fit(self) -> None:
        """Scale the picture to the view again (after the view was resized)."""
        self._fit()

    def _fit(self) -> None:
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.resetTransform()
        view = self.viewport().rect()
        # Fit, but never so small that the names cannot be read: scroll (drag) instead.
        scale = max(MIN_SCALE, min(view.width() / rect.width(), view.height() / rect.height(),
                                   1.0))
        self.scale(scale, scale)
        # What does not fit scrolls; start from the top left, where the chain begins.
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().minimum())
        self.verticalScrollBar().setValue(self.verticalScrollBar().minimum())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if not self.layers:
            painter.save()
            painter.resetTransform()
            painter.setPen(QColor(theme.chrome("CAPTION")))
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
                             self.empty_text)
            painter.restore()

    def mouseDoubleClickEvent(self, event) -> None:
        """Double-clicking a layer's box (anywhere on it) activates that layer."""
        for item in self.items(event.position().toPoint()):
            if item.data(0):
                self.layer_activated.emit(str(item.data(0)))
                break
        super().mouseDoubleClickEvent(event)

    def _menu(self, pos) -> None:
        item = self.itemAt(pos)
        if isinstance(item, Edge) and item.flags() & QGraphicsItem.GraphicsItemFlag.ItemIsSelectable:
            self.scene().clearSelection()
            item.setSelected(True)
        if not self.context_actions:
            return
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        for action in self.context_actions:
            menu.addAction(action)
        menu.exec(self.viewport().mapToGlobal(pos))
