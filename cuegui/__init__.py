"""cuegui: the CueFarm desktop client (Qt through qtpy).

Entry points live in `cuegui.main`; nothing here imports Qt, so the `cuefarm` command line can
load `cuegui.main:command` without starting Qt.
"""
