"""The comments panel's rules and the statistics panels' drawing, without a supervisor."""

from __future__ import annotations

from cuegui.views.comments import CommentsPanel
from cuegui.views.farmstats import (HostHistoryPanel, LayerStatsPanel, histogram,
                                    memory_text)


def rows():
    return [{"id": 1, "author": "ann", "text": "mine", "created_at": 1.7e9, "job_id": 5},
            {"id": 2, "author": "bob", "text": "his", "created_at": 1.7e9 + 60, "job_id": 5}]


def test_the_panel_adds_trimmed_text_and_deletes_only_what_the_user_may(qtbot):
    panel = CommentsPanel("job")
    qtbot.addWidget(panel)
    wanted, deleted = [], []
    panel.add_wanted.connect(wanted.append)
    panel.delete_wanted.connect(deleted.append)
    assert not panel.editor.isEnabled()             # nothing selected
    panel.set_user("ann", admin=False)
    panel.show_subject(5, "job 5")
    panel.show_comments(6, rows())                  # another job's answer: ignored
    assert panel.list.count() == 0
    panel.show_comments(5, rows())
    assert [panel.list.item(i).text().splitlines()[-1] for i in range(2)] == ["mine", "his"]
    panel.list.setCurrentRow(1)
    assert not panel.delete_button.isEnabled() and "bob's" in panel.delete_button.toolTip()
    panel.list.setCurrentRow(0)
    assert panel.delete_button.isEnabled()
    panel.delete_button.click()
    panel.set_user("ann", admin=True)
    panel.list.setCurrentRow(1)
    assert panel.delete_button.isEnabled()
    panel.editor.setPlainText("  \n ")
    assert not panel.add_button.isEnabled()
    panel.editor.setPlainText("  look at frame 4 \n")
    panel.add_button.click()
    assert (wanted, deleted) == (["look at frame 4"], [1])
    # Another job: its comments, not the last one's.
    panel.show_subject(9, "job 9")
    assert panel.list.count() == 0 and "job 9" in panel.caption.text()


def test_histogram_and_memory_words():
    edges, counts = histogram([1.0, 1.0, 1.0])
    assert counts.sum() == 3 and edges[0] < 1.0 < edges[-1]
    edges, counts = histogram([1.0, 2.0, 3.0, 10.0], bins=3)
    assert list(counts) == [3, 0, 1]
    assert histogram([])[1].sum() == 0
    assert (memory_text(0), memory_text(18 << 20), memory_text(3 << 30)) == ("", "18 MB",
                                                                             "3.0 GB")


def test_panels_show_nothing_chosen_and_an_unfinished_layer(qtbot):
    stats = LayerStatsPanel()
    history = HostHistoryPanel()
    qtbot.addWidget(stats)
    qtbot.addWidget(history)
    assert "Select a job" in stats.caption.text() and stats.bars is None
    stats.show_stats(3, [{"layer_id": 7, "layer": "render", "succeeded": 0, "failed": 0,
                          "avg": None, "min": None, "max": None, "peak_rss": 0,
                          "core_hours": 0.0, "runtimes": []}])
    assert stats.shown_layer == "render" and stats.bars is None
    assert "no frame has finished" in stats.plot.getPlotItem().titleLabel.text
    history.show_history("render01", [])
    assert "No history of render01" in history.caption.text()
    history.show_history("render01", [{"t": 1.7e9 + 60 * i, "load": 1.0, "memory_used_mb": 2048,
                                        "running": i} for i in range(3)])
    assert "3 points" in history.caption.text()
    assert len(history.plots["load"].getPlotItem().listDataItems()) == 1


def test_the_layer_shown_is_read_from_the_model_not_copied_through_qt(qtbot):
    """A layer's run times can be a hundred thousand numbers: the view hands over the model's
    own row (Qt's data(RowRole) copied it deeply, twice: 7 ms for 30,000 run times, on every
    refresh of the panel), and the histogram counts every one of them."""
    stats = LayerStatsPanel()
    qtbot.addWidget(stats)
    runtimes = [float(i % 600) for i in range(30_000)]
    stats.show_stats(3, [
        {"layer_id": 7, "layer": "render", "core_hours": 9.0, "runtimes": runtimes},
        {"layer_id": 8, "layer": "comp", "core_hours": 1.0, "runtimes": [5.0]}])
    qtbot.waitUntil(lambda: stats.view.current_row() is not None)
    row = stats.view.current_row()
    assert row is stats.model.get(7) and row["runtimes"] is runtimes
    assert stats.view.selected_rows() == [row]
    assert stats.shown_layer == "render" and "30000 frames" in \
        stats.plot.getPlotItem().titleLabel.text
