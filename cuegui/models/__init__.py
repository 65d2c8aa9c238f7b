"""Table models of the client's data, each keyed by row id and updated in place."""

from cuegui.models.frames import FramesModel
from cuegui.models.hosts import HostsModel
from cuegui.models.jobs import JobsModel
from cuegui.models.layers import LayersModel
from cuegui.models.table import IdRole, RowRole, RowTableModel, SortRole

__all__ = ["FramesModel", "HostsModel", "IdRole", "JobsModel", "LayersModel", "RowRole",
           "RowTableModel", "SortRole"]
