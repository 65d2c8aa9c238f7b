"""Saved views of the jobs list: saved, switched, deleted, kept across a restart of the
window; the status menu stays open while several states are ticked; the user and project
combos keep saying what they filter."""

from __future__ import annotations

from qtpy.QtCore import QPoint, QSettings, Qt
from qtpy.QtWidgets import QApplication

from tests.cuegui.helpers import wait
from tests.cuegui.test_window import make_window, sim  # noqa: F401  (the fixture)


def _settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "cuegui.ini"), QSettings.Format.IniFormat)


def test_a_saved_view_is_restored_after_a_restart(qtbot, sim, tmp_path):  # noqa: F811
    store = _settings(tmp_path)
    w = make_window(qtbot, sim, settings=store)
    panel, views = w.jobs_panel, w.saved_views
    panel.mine.setChecked(False)
    panel.update_choices()
    panel.user_box.setCurrentIndex(panel.user_box.findData("bob"))
    panel.project_box.setCurrentIndex(panel.project_box.findData("feature"))
    views.ask = lambda _parent, _suggestion: "  bob feature  "
    assert views.save_current()
    assert views.current() == "bob feature"
    assert views.combo.currentText() == "View: bob feature"
    # A second view: everything but the finished jobs.
    panel.user_box.setCurrentIndex(0)
    panel.project_box.setCurrentIndex(0)
    assert views.current() is None and views.combo.currentText() == "View: custom"
    panel.status_actions["finished"].setChecked(False)
    assert views.save_as("unfinished")
    assert views.switch("bob feature")
    assert sorted(w.jobs_model.ids()) == [2, 4]
    w.close()

    w2 = make_window(qtbot, sim, settings=store)
    try:
        v2 = w2.saved_views
        assert v2.names() == ["bob feature", "unfinished"]
        assert v2.current() == "bob feature"
        wait(qtbot, lambda: sorted(w2.jobs_model.ids()) == [2, 4])
        assert w2.jobs_panel.user_box.currentText() == "User: bob"
        assert v2.switch("unfinished")
        assert sorted(w2.jobs_model.ids()) == [1, 2, 3, 4, 6, 7]
        assert w2.jobs_panel.user_box.currentText() == "User: All"
        # Switching through the combo, as a user does.
        v2.combo.setCurrentIndex(v2.combo.findData("bob feature"))
        v2.combo.activated.emit(v2.combo.currentIndex())
        assert sorted(w2.jobs_model.ids()) == [2, 4]
        assert v2.delete_current()
        assert v2.names() == ["unfinished"]
    finally:
        w2.close()
    assert "bob feature" not in (store.value("views/jobs") or "")


def test_bad_view_names_and_missing_views_say_why(qtbot, sim):  # noqa: F811
    w = make_window(qtbot, sim)
    messages = []
    w.saved_views.message.connect(lambda text, error: messages.append((text, error)))
    assert not w.saved_views.save_as("   ")
    assert messages[-1] == ("View not saved: a view needs a name", True)
    assert not w.saved_views.save_as("x" * 65)
    assert "at most 64" in messages[-1][0]
    assert not w.saved_views.switch("nowhere")
    assert messages[-1] == ("No saved view called 'nowhere'", True)
    assert not w.saved_views.delete_current()
    assert messages[-1] == ("Choose a saved view to delete", True)
    assert "View not saved" in w.statusBar().currentMessage() or messages
    w.close()


def test_status_menu_stays_open_while_ticking_several(qtbot, sim):  # noqa: F811
    w = make_window(qtbot, sim)
    panel = w.jobs_panel
    menu = panel.status_menu
    menu.popup(panel.status_button.mapToGlobal(QPoint(0, panel.status_button.height())))
    wait(qtbot, menu.isVisible)
    for status in ("finished", "killed"):
        action = panel.status_actions[status]
        centre = menu.actionGeometry(action).center()
        qtbot.mouseMove(menu, centre)
        menu.setActiveAction(action)
        qtbot.mouseClick(menu, Qt.MouseButton.LeftButton, pos=centre)
        QApplication.processEvents()
        assert menu.isVisible(), f"the menu closed after ticking {status}"
        assert not action.isChecked()
    assert panel.status_button.text() == "Status: 5 of 7"
    menu.close()
    w.close()


def test_user_and_project_combos_keep_their_labels(qtbot, sim):  # noqa: F811
    w = make_window(qtbot, sim)
    panel = w.jobs_panel
    panel.update_choices()
    panel.user_box.setCurrentIndex(panel.user_box.findData("ann"))
    panel.project_box.setCurrentIndex(panel.project_box.findData("promo"))
    assert panel.user_box.currentText() == "User: ann"
    assert panel.project_box.currentText() == "Project: promo"
    panel.set_filter_state({"user": "carol", "project": None})
    assert panel.user_box.currentText() == "User: carol"
    assert panel.project_box.currentText() == "Project: All"
    w.close()
