"""The dependency picture as a widget: what a job waits for on the left, what waits on it on
the right, every arrow labelled with its kind, a legend, and boxes as wide as their text."""

from __future__ import annotations

from qtpy.QtWidgets import QGraphicsRectItem, QGraphicsSimpleTextItem

from cuegui.views.depgraph import DependencyGraph

LAYERS = [{"name": "prep", "frames_total": 2, "succeeded": 2},
          {"name": "beauty_with_a_rather_long_name", "frames_total": 8, "running": 2}]
DEPS = [
    {"id": 1, "kind": "layer", "layer": "prep", "target_job_id": 3, "target_layer": "scan",
     "satisfied": True},
    {"id": 2, "kind": "layer", "layer": "beauty_with_a_rather_long_name", "target_job_id": 7,
     "target_layer": "prep", "satisfied": True},
    {"id": 5, "kind": "frame", "job_id": 9, "job_name": "shot010_comp_final_version_two",
     "layer": "comp", "target_layer": "beauty_with_a_rather_long_name", "satisfied": False,
     "dependant": True},
    {"id": 6, "kind": "job", "job_id": 11, "job_name": "review", "layer": "movie",
     "target_layer": None, "satisfied": False, "dependant": True},
]


def texts(graph) -> dict[str, QGraphicsSimpleTextItem]:
    return {i.text(): i for i in graph.scene().items() if isinstance(i, QGraphicsSimpleTextItem)}


def test_dependants_sit_right_of_the_job_and_every_text_fits_its_box(qtbot):
    graph = DependencyGraph()
    qtbot.addWidget(graph)
    graph.resize(1200, 400)
    graph.jobs = {3: {"name": "plates"}}
    graph.show_job(7, LAYERS, DEPS)
    shown = texts(graph)
    for name in ("plates", "scan", "prep", "beauty_with_a_rather_long_name",
                 "shot010_comp_final_version_two", "comp", "review", "movie"):
        assert name in shown, name
    # Columns: the other job waited for, this job's layers, then the jobs waiting on it.
    x = {n: shown[n].scenePos().x() for n in ("plates", "prep", "beauty_with_a_rather_long_name",
                                              "shot010_comp_final_version_two", "review")}
    assert x["plates"] < x["prep"] < x["beauty_with_a_rather_long_name"] \
        < x["shot010_comp_final_version_two"] == x["review"]
    # Every text lies inside the box under it.
    boxes = [i.sceneBoundingRect() for i in graph.scene().items()
             if isinstance(i, QGraphicsRectItem) and i.sceneBoundingRect().height() > 20]
    for name in ("plates", "beauty_with_a_rather_long_name", "shot010_comp_final_version_two"):
        text = shown[name].sceneBoundingRect()
        assert any(b.contains(text) for b in boxes), name
    # Arrows: two in, a frame-by-frame one out of beauty, a whole-job one out of the last layer.
    edges = graph.edges()
    assert sorted(e.dep["id"] for e in edges) == [1, 2, 5, 6]
    assert {"layer", "per frame", "job"} <= set(shown)
    for word in ("holds", "satisfied", "frame by frame", "another job"):
        assert word in shown, word
    out = next(e for e in edges if e.dep["id"] == 5)
    assert "shot010_comp_final_version_two / comp waits for layer beauty" in out.toolTip()
    assert graph.select_dependency(5) and graph.selected_dependency()["job_id"] == 9


def test_a_job_without_dependencies_has_no_legend(qtbot):
    graph = DependencyGraph()
    qtbot.addWidget(graph)
    graph.show_job(1, [{"name": "only", "frames_total": 1}], [])
    assert "only" in texts(graph)
    assert "holds" not in texts(graph) and graph.edges() == []
